package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/safetensors"
)

// storedTensor is a tensor as a weights file holds it, before the loader checks it
// against the config. dtype is the safetensors spelling, which may name a dtype the
// engine cannot use ("I64"): such tensors are fine as long as OPT does not need them.
type storedTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// parseSafetensors indexes the tensors of a whole safetensors file held in memory;
// their data alias file. Tensors come back sorted by name.
func parseSafetensors(file []byte) ([]storedTensor, error) {
	header, buffer, err := safetensors.Split(file)
	if err != nil {
		return nil, err
	}
	entries, _, _, err := safetensors.ParseHeader(header)
	if err != nil {
		return nil, err
	}
	tensors := make([]storedTensor, 0, len(entries))
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		t, err := resolve(name, entries[name], buffer)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		tensors = append(tensors, t)
	}
	return tensors, nil
}

// resolve checks e against the data buffer and returns the tensor it describes.
func resolve(name string, e safetensors.Entry, buffer []byte) (storedTensor, error) {
	size, ok := safetensors.DTypeSize(e.DType)
	if !ok {
		return storedTensor{}, fmt.Errorf("unknown dtype %q", e.DType)
	}
	shape := make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || int64(int(d)) != d {
			return storedTensor{}, fmt.Errorf("shape %v has an invalid dimension", e.Shape)
		}
		shape[i] = int(d)
	}
	if len(e.DataOffsets) != 2 {
		return storedTensor{}, fmt.Errorf("data_offsets %v is not a [begin, end] pair", e.DataOffsets)
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin {
		return storedTensor{}, fmt.Errorf("data_offsets %v is not a byte range", e.DataOffsets)
	}
	if end > int64(len(buffer)) {
		return storedTensor{}, fmt.Errorf("data_offsets %v run past the %d bytes of data: file truncated?",
			e.DataOffsets, len(buffer))
	}
	nbytes, ok := checkedProduct(append(slices.Clone(shape), size))
	if !ok || int64(nbytes) != end-begin {
		return storedTensor{}, fmt.Errorf("shape %v of %s needs %s bytes, data_offsets %v hold %d",
			e.Shape, e.DType, byteCount(nbytes, ok), e.DataOffsets, end-begin)
	}
	return storedTensor{name: name, dtype: e.DType, shape: shape, data: buffer[begin:end:end]}, nil
}

func byteCount(n int, ok bool) string {
	if !ok {
		return "too many"
	}
	return strconv.Itoa(n)
}

// checkedProduct multiplies non-negative factors; ok is false on overflow.
func checkedProduct(factors []int) (product int, ok bool) {
	product = 1
	for _, f := range factors {
		if f < 0 || f != 0 && product > math.MaxInt/f {
			return 0, false
		}
		product *= f
	}
	return product, true
}

// tensorSource is a tensor to write: its header fields and a function producing its
// little-endian bytes, called once when the writer reaches it, so a writer holds one
// tensor in memory at a time.
type tensorSource struct {
	name  string
	dtype half.DType
	shape []int
	bytes func() ([]byte, error)
}

func (s tensorSource) nbytes() int {
	n, _ := checkedProduct(append(slices.Clone(s.shape), s.dtype.Size()))
	return n
}

// writeSafetensors writes tensors to w as a safetensors file, in the given order, with
// the metadata {"format": "pt"} that transformers expects.
func writeSafetensors(w io.Writer, tensors []tensorSource) error {
	var header bytes.Buffer
	header.WriteString(`{"` + safetensors.MetadataKey + `":{"format":"pt"}`)
	offset := 0
	for _, t := range tensors {
		name, err := json.Marshal(t.name)
		if err != nil {
			return err
		}
		end := offset + t.nbytes()
		fmt.Fprintf(&header, `,%s:{"dtype":"%s","shape":[`, name, t.dtype)
		for i, d := range t.shape {
			if i > 0 {
				header.WriteByte(',')
			}
			header.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&header, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	header.WriteByte('}')
	for (8+header.Len())%safetensors.Align != 0 {
		header.WriteByte(' ')
	}
	var length [8]byte
	binary.LittleEndian.PutUint64(length[:], uint64(header.Len()))
	if _, err := w.Write(length[:]); err != nil {
		return err
	}
	if _, err := w.Write(header.Bytes()); err != nil {
		return err
	}
	for _, t := range tensors {
		data, err := t.bytes()
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.name, err)
		}
		if len(data) != t.nbytes() {
			return fmt.Errorf("tensor %s: %d bytes, its shape %v of %v needs %d", t.name, len(data), t.shape, t.dtype, t.nbytes())
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// dtypeSize is an element's size by its safetensors dtype name, 0 when unknown.
func dtypeSize(dtype string) int {
	n, _ := safetensors.DTypeSize(dtype)
	return n
}
