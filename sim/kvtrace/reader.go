package kvtrace

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/mapfile"
	"github.com/kvsim/kvsim/internal/safetensors"
)

// Trace is an open kvtrace file. Its tensors stay in the file (memory-mapped where
// the OS allows) and are converted to float32 on each Read.
//
// # Notes
//
//   - Meta, Tokens, Read and the other getters are safe for concurrent use; Close is
//     not safe to call while any of them runs.
//   - The file must not be truncated while it is open: on unix a read from the lost
//     part of the mapping kills the process (SIGBUS). Writer replaces files by rename,
//     which is safe.
type Trace struct {
	path    string
	meta    Meta
	dtype   half.DType
	tokens  []int32
	data    []byte    // the data buffer; nil once closed
	layers  [][3]span // byte ranges in data, indexed [layer][Q, K, V]
	release func() error
}

// span is a tensor's byte range within the data buffer.
type span struct{ begin, end int }

// Open maps the trace at path and validates its header against the kvtrace v1
// format: every problem is reported as an error naming the file.
func Open(path string) (*Trace, error) {
	// Opening a FIFO would wait for a writer: look before opening.
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() {
		return nil, fmt.Errorf("kvtrace %s: not a regular file (%v)", path, info.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("kvtrace %s: not a regular file (%v)", path, info.Mode().Type())
	}
	if info.Size() < 8 {
		return nil, fmt.Errorf("kvtrace %s: truncated: file has %d bytes, fewer than the 8-byte header length",
			path, info.Size())
	}
	if info.Size() > math.MaxInt {
		return nil, fmt.Errorf("kvtrace %s: file has %d bytes, too many to map", path, info.Size())
	}
	file, release, err := mapfile.Map(f, int(info.Size()))
	if err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	t, err := parse(path, file)
	if err != nil {
		release()
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	t.release = release
	return t, nil
}

// parse validates a whole trace file held in memory and indexes its tensors.
func parse(path string, file []byte) (*Trace, error) {
	header, data, err := safetensors.Split(file)
	if err != nil {
		return nil, err
	}
	entries, metadata, hasMetadata, err := safetensors.ParseHeader(header)
	if err != nil {
		return nil, err
	}
	if !hasMetadata {
		return nil, fmt.Errorf("header has no %s block", safetensors.MetadataKey)
	}
	meta, err := decodeMeta(metadata)
	if err != nil {
		return nil, err
	}
	_, meta.HasV = entries[tensorName(V, 0)]
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		kind, layer, ok := parseTensorName(name)
		if !ok || layer >= meta.Layers {
			return nil, fmt.Errorf("unknown tensor %q (a trace of %d layers holds tokens and layer.<0..%d>.q/k/v)",
				name, meta.Layers, meta.Layers-1)
		}
		if kind == V && !meta.HasV {
			return nil, fmt.Errorf("tensor %s is present but %s is not (V must be present for all layers or none)",
				name, tensorName(V, 0))
		}
	}

	t := &Trace{path: path, meta: meta, data: data}
	var (
		firstLayer string // the layer tensor that set t.dtype
		spans      []namedSpan
	)
	// Stopping at the first missing tensor bounds this loop by the number of header
	// entries, however many layers the metadata claims.
	for spec := range meta.tensors() {
		e, ok := entries[spec.name]
		if !ok {
			if kind, _, _ := parseTensorName(spec.name); kind == V {
				return nil, fmt.Errorf("missing tensor %s, but %s is present (V must be present for all layers or none)",
					spec.name, tensorName(V, 0))
			}
			return nil, fmt.Errorf("missing tensor %s", spec.name)
		}
		elemSize := 4
		d, known := half.LookupDType(e.DType)
		switch {
		case spec.name == tokensName:
			if e.DType != tokensDType {
				return nil, fmt.Errorf("tensor %s: dtype %s, want %s", spec.name, e.DType, tokensDType)
			}
		case !known:
			return nil, fmt.Errorf("tensor %s: dtype %s, want %s, %s or %s", spec.name, e.DType, half.F16, half.BF16, half.F32)
		case t.dtype == 0:
			t.dtype, firstLayer = d, spec.name
			elemSize = t.dtype.Size()
		case d != t.dtype:
			return nil, fmt.Errorf("tensor %s: dtype %s, but %s is %s (all layer tensors share one dtype)",
				spec.name, e.DType, firstLayer, t.dtype)
		default:
			elemSize = t.dtype.Size()
		}
		if !shapeIs(e.Shape, spec.shape) {
			return nil, fmt.Errorf("tensor %s: shape %v, want %v", spec.name, e.Shape, spec.shape)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %s: data_offsets %v, want [begin end]", spec.name, e.DataOffsets)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin {
			return nil, fmt.Errorf("tensor %s: data_offsets %v are not a range", spec.name, e.DataOffsets)
		}
		if want := int64(spec.count) * int64(elemSize); end-begin != want {
			return nil, fmt.Errorf("tensor %s: data_offsets %v hold %d bytes, want %d (shape %v of %s)",
				spec.name, e.DataOffsets, end-begin, want, spec.shape, e.DType)
		}
		spans = append(spans, namedSpan{spec.name, begin, end})
	}

	// Every tensor now has the size its shape asks for, so their total is the size of
	// a well-formed data buffer.
	total, _ := dataSize(meta, t.dtype.Size(), len(meta.kinds()))
	if total > len(data) {
		return nil, fmt.Errorf("truncated: header says %d bytes of data, file has %d", total, len(data))
	}
	if total < len(data) {
		return nil, fmt.Errorf("%d bytes after the last tensor: header says %d bytes of data, file has %d",
			len(data)-total, total, len(data))
	}
	for _, s := range spans {
		if s.end > int64(len(data)) {
			return nil, fmt.Errorf("tensor %s: data_offsets [%d %d] run past the end of the %d-byte data buffer",
				s.name, s.begin, s.end, len(data))
		}
	}
	// Stable, so that corrupt offsets with equal begins are reported in file order.
	byBegin := slices.SortedStableFunc(slices.Values(spans), func(a, b namedSpan) int { return cmp.Compare(a.begin, b.begin) })
	var prev namedSpan
	for i, s := range byBegin {
		switch {
		case i == 0 && s.begin != 0:
			return nil, fmt.Errorf("tensor %s: data_offsets [%d %d] leave the first %d bytes of data unused",
				s.name, s.begin, s.end, s.begin)
		case i > 0 && s.begin < prev.end:
			return nil, fmt.Errorf("tensor %s: data_offsets [%d %d] overlap tensor %s [%d %d]",
				s.name, s.begin, s.end, prev.name, prev.begin, prev.end)
		case i > 0 && s.begin > prev.end:
			return nil, fmt.Errorf("tensor %s: data_offsets [%d %d] leave a gap of %d bytes after tensor %s [%d %d]",
				s.name, s.begin, s.end, s.begin-prev.end, prev.name, prev.begin, prev.end)
		}
		prev = s
	}

	tokens := data[spans[0].begin:spans[0].end]
	t.tokens = make([]int32, meta.Tokens())
	for i := range t.tokens {
		t.tokens[i] = int32(binary.LittleEndian.Uint32(tokens[4*i:]))
	}
	t.layers = make([][3]span, meta.Layers)
	for i, s := range spans[1:] {
		kinds := len(meta.kinds())
		t.layers[i/kinds][i%kinds] = span{int(s.begin), int(s.end)}
	}
	return t, nil
}

// namedSpan is a tensor's data_offsets as the header gives them.
type namedSpan struct {
	name       string
	begin, end int64
}

func shapeIs(got []int64, want []int) bool {
	return slices.EqualFunc(got, want, func(g int64, w int) bool { return g == int64(w) })
}

// Meta returns the trace's metadata.
func (t *Trace) Meta() Meta { return t.meta }

// Name returns the path the trace was opened from.
func (t *Trace) Name() string { return t.path }

// Tokens returns the token ids of the prompt followed by the generated tokens. The
// slice is shared: callers must not modify it.
func (t *Trace) Tokens() []int32 { return t.tokens }

// HasV reports whether the trace holds value tensors.
func (t *Trace) HasV() bool { return t.meta.HasV }

// DType returns the element type the layer tensors are stored in.
func (t *Trace) DType() half.DType { return t.dtype }

// Read converts one layer tensor to float32, laid out [heads][tokens][head_dim] in
// row-major order. It stores into dst when dst has the capacity, so a caller that
// passes back the previous result reads every layer without allocating.
func (t *Trace) Read(kind Kind, layer int, dst []float32) ([]float32, error) {
	if t.data == nil {
		return dst, fmt.Errorf("kvtrace %s: read from a closed trace", t.path)
	}
	if layer < 0 || layer >= t.meta.Layers {
		return dst, fmt.Errorf("kvtrace %s: layer %d out of range (the trace has %d layers)",
			t.path, layer, t.meta.Layers)
	}
	var index int
	switch kind {
	case Q:
		index = 0
	case K:
		index = 1
	case V:
		if !t.meta.HasV {
			return dst, fmt.Errorf("kvtrace %s: the trace has no V tensors", t.path)
		}
		index = 2
	default:
		return dst, fmt.Errorf("kvtrace %s: unknown tensor kind %v", t.path, kind)
	}
	s := t.layers[layer][index]
	src := t.data[s.begin:s.end]
	n := len(src) / t.dtype.Size()
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if i := t.dtype.DecodeFinite(dst, src); i >= 0 {
		T, d := t.meta.Tokens(), t.meta.HeadDim
		return dst, fmt.Errorf("kvtrace %s: tensor %s (layer %d): %v at head %d, token %d, dim %d; a trace must hold finite values",
			t.path, tensorName(kind, layer), layer, dst[i], i/(T*d), i/d%T, i%d)
	}
	return dst, nil
}

// Close releases the file mapping. Closing twice is harmless.
func (t *Trace) Close() error {
	if t.data == nil {
		return nil
	}
	t.data = nil
	if err := t.release(); err != nil {
		return fmt.Errorf("kvtrace %s: %w", t.path, err)
	}
	return nil
}
