"""Independent reader for the checkpoints WriteSynth writes, used by checkpoint_test.go.

Reads model.safetensors with struct and json, and pytorch_model.bin with zipfile and
a pickle.Unpickler that stands in for torch (torch itself is not needed). Checks the
torch archive layout torch.load relies on, then prints, for each format, every
tensor's dtype, shape and the SHA-256 of its bytes as JSON.

Usage: python3 crosscheck.py CHECKPOINT_DIR
"""

import collections
import hashlib
import json
import os
import pickle
import struct
import sys
import zipfile

SIZES = {"F16": 2, "BF16": 2, "F32": 4}
STORAGES = {"HalfStorage": "F16", "BFloat16Storage": "BF16", "FloatStorage": "F32"}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0, "data buffer not 8-aligned"
    header = json.loads(data[8 : 8 + n])
    assert header.pop("__metadata__") == {"format": "pt"}
    body = data[8 + n :]
    out = {}
    end = 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = e["data_offsets"]
        assert begin == end, "gap or overlap before " + name
        end = stop
        numel = 1
        for d in e["shape"]:
            numel *= d
        assert stop - begin == numel * SIZES[e["dtype"]], name
        out[name] = (e["dtype"], e["shape"], body[begin:stop])
    assert end == len(body), "trailing bytes"
    return out


class Tensor:
    def __init__(self, storage, offset, size, stride, requires_grad, hooks):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        assert requires_grad is False and hooks == collections.OrderedDict()


class StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return Tensor
        if module == "torch" and name in STORAGES:
            return STORAGES[name]
        raise pickle.UnpicklingError("unexpected global %s.%s" % (module, name))

    def persistent_load(self, pid):
        kind, dtype, key, location, numel = pid
        assert kind == "storage" and location == "cpu"
        return (dtype, key, numel)


def read_torch(path):
    z = zipfile.ZipFile(path)
    assert z.testzip() is None, "CRC mismatch"
    infos = z.infolist()
    prefix = infos[0].filename.split("/")[0] + "/"
    names = [i.filename for i in infos]
    assert names[0] == prefix + "data.pkl" and names[1] == prefix + "byteorder", names[:2]
    assert names[-1] == prefix + "version", names[-1]
    assert z.read(prefix + "version") == b"3\n"
    assert z.read(prefix + "byteorder") == b"little"
    with open(path, "rb") as f:
        raw = f.read()
    for i in infos:
        assert i.compress_type == zipfile.ZIP_STORED, i.filename
        name_len, extra_len = struct.unpack("<HH", raw[i.header_offset + 26 : i.header_offset + 30])
        assert (i.header_offset + 30 + name_len + extra_len) % 64 == 0, i.filename + " not 64-aligned"
    state = StateDictUnpickler(z.open(prefix + "data.pkl")).load()
    assert isinstance(state, collections.OrderedDict)
    out = {}
    for name, t in state.items():
        dtype, key, numel = t.storage
        storage = z.read(prefix + "data/" + key)
        size = SIZES[dtype]
        assert len(storage) == numel * size
        count, expect = 1, []
        for d in reversed(t.size):
            expect.insert(0, count)
            count *= d
        assert list(t.stride) == expect, name + " not contiguous"
        out[name] = (dtype, list(t.size), storage[t.offset * size : (t.offset + count) * size])
    return out


def main():
    directory = sys.argv[1]
    result = {}
    for fmt, fn, reader in (
        ("safetensors", "model.safetensors", read_safetensors),
        ("pytorch", "pytorch_model.bin", read_torch),
    ):
        tensors = reader(os.path.join(directory, fn))
        result[fmt] = {
            name: {"dtype": d, "shape": s, "sha256": hashlib.sha256(b).hexdigest()}
            for name, (d, s, b) in tensors.items()
        }
    json.dump(result, sys.stdout)


main()
