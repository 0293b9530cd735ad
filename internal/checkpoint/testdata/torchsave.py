"""Writes pytorch_model.bin the way torch.save writes a state dict, without torch.

Used by checkpoint_test.go to check the loader against a writer it does not share
code with. The tensors come from CHECKPOINT_DIR/model.safetensors; the archive gets:

  - Python's own pickle.Pickler at protocol 2 with a persistent_id hook, as torch.save
    uses, so memo opcodes, TUPLE1-3 and the state dict's _metadata BUILD appear as in
    real checkpoints;
  - stub torch._utils._rebuild_tensor_v2 and torch.<dtype>Storage globals;
  - the archive folder named after the file, as torch before 2.0 named it, and no
    alignment padding (Python's zipfile writes none);
  - lm_head.weight sharing embed_tokens' storage, and q, k, v of layer 0 as views at
    offsets into one fused storage.

Usage: python3 torchsave.py CHECKPOINT_DIR
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = torch_utils
STORAGE_CLASSES = {}
for dtype, name in (("F16", "HalfStorage"), ("BF16", "BFloat16Storage"), ("F32", "FloatStorage")):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    STORAGE_CLASSES[dtype] = cls
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils

SIZES = {"F16": 2, "BF16": 2, "F32": 4}


class Storage:
    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, data


class Tensor:
    def __init__(self, storage, offset, shape):
        self.storage, self.offset, self.shape = storage, offset, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for d in reversed(self.shape):
            stride.insert(0, step)
            step *= d
        hooks = collections.OrderedDict()
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.shape, tuple(stride), False, hooks))


class StatePickler(pickle.Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=2)
        self.keys = {}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        key = self.keys.setdefault(id(obj), (str(len(self.keys)), obj))[0]
        numel = len(obj.data) // SIZES[obj.dtype]
        return ("storage", STORAGE_CLASSES[obj.dtype], key, "cpu", numel)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    return {
        name: (e["dtype"], e["shape"], body[e["data_offsets"][0] : e["data_offsets"][1]])
        for name, e in header.items()
    }


def main():
    directory = sys.argv[1]
    tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    state = collections.OrderedDict()
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
    fused_names = [
        "model.decoder.layers.0.self_attn.%s_proj.weight" % p for p in ("q", "k", "v")
    ]
    dtype = tensors[fused_names[0]][0]
    fused = Storage(dtype, b"".join(tensors[n][2] for n in fused_names))
    offsets, offset = {}, 0
    for n in fused_names:
        offsets[n] = offset
        offset += len(tensors[n][2]) // SIZES[dtype]
    for name, (dtype, shape, data) in sorted(tensors.items()):
        if name in fused_names:
            state[name] = Tensor(fused, offsets[name], shape)
        else:
            state[name] = Tensor(Storage(dtype, data), 0, shape)
    embed = state["model.decoder.embed_tokens.weight"]
    state["lm_head.weight"] = Tensor(embed.storage, 0, embed.shape)

    pickler_out = io.BytesIO()
    pickler = StatePickler(pickler_out)
    pickler.dump(state)
    prefix = "pytorch_model/"
    with zipfile.ZipFile(os.path.join(directory, "pytorch_model.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "data.pkl", pickler_out.getvalue())
        for key, storage in sorted(pickler.keys.values()):
            z.writestr(prefix + "data/" + key, storage.data)
        z.writestr(prefix + "version", b"3\n")


main()
