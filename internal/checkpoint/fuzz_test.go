package checkpoint

import (
	"bytes"
	"testing"
)

// smallTensors is a state dict small enough for a fuzz seed.
func smallTensors() []rawTensor {
	return []rawTensor{
		{"model.decoder.embed_tokens.weight", "F16", []int{2, 3}, []byte{0, 60, 0, 192, 0, 56, 0, 0, 1, 0, 0, 128}},
		{"lm_head.weight", "BF16", []int{3}, []byte{128, 63, 0, 192, 0, 63}},
		{"model.decoder.version", "I64", []int{}, make([]byte, 8)},
	}
}

// checkStored checks the invariant every parsed tensor must keep: its data holds
// exactly its elements.
func checkStored(t *testing.T, tensors []storedTensor) {
	for _, tensor := range tensors {
		n, ok := checkedProduct(append(append([]int(nil), tensor.shape...), dtypeSize(tensor.dtype)))
		if !ok || n != len(tensor.data) {
			t.Fatalf("tensor %s: shape %v of %s with %d bytes", tensor.name, tensor.shape, tensor.dtype, len(tensor.data))
		}
	}
}

func FuzzParseSafetensors(f *testing.F) {
	valid := encodeSafetensors(f, smallTensors())
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:20])
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, err := parseSafetensors(data)
		if err == nil {
			checkStored(t, tensors)
		}
	})
}

func FuzzUnpickleStateDict(f *testing.F) {
	views, _ := contiguousViews(smallTensors())
	views[1].offset = 1
	pkl, err := pickleStateDict(views)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pkl)
	f.Add(pkl[:len(pkl)/2])
	// A self-referential dict, whose printing would recurse forever.
	f.Add([]byte("\x80\x02}q\x00(X\x01\x00\x00\x00ah\x00u."))
	f.Add([]byte("\x80\x02\x95\xff\xff\xff\xff\xff\xff\xff\x7f."))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, err := unpickleStateDict(data)
		if err != nil {
			return
		}
		for _, p := range tensors {
			size, ok := checkedProduct([]int{p.storage.numel, dtypeSize(p.storage.dtype)})
			if !ok || size > 1<<16 {
				continue
			}
			if stored, err := p.view(make([]byte, size)); err == nil {
				checkStored(t, []storedTensor{stored})
			}
		}
	})
}

func FuzzParseTorchZip(f *testing.F) {
	views, storages := contiguousViews(smallTensors())
	archive := encodeTorchZip(f, "archive", views, storages)
	f.Add(archive)
	f.Add(archive[:len(archive)-40])
	f.Add(bytes.Repeat([]byte("PK\x03\x04"), 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, err := parseTorchZip(data)
		if err == nil {
			checkStored(t, tensors)
		}
	})
}
