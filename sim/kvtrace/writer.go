package kvtrace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/internal/half"
)

// Writer streams a trace to disk one layer at a time, so no producer holds more
// than a layer in memory. The header is written up front: the metadata fixes every
// shape. The file appears at its path only when Close succeeds.
//
// Call WriteTokens, then WriteLayer for layers 0, 1, ... in order, then Close. A
// call with bad arguments returns an error and changes nothing; an I/O error makes
// every later call fail. Abort (or a failed Close) removes the temporary file.
type Writer struct {
	path    string
	tmpPath string
	file    *os.File
	buf     *bufio.Writer
	meta    Meta
	dtype   half.DType

	tokensWritten bool
	layersWritten int
	ioErr         error // first write error; the temporary file is then unusable
	done          bool  // closed or aborted
}

// Create starts a trace at path with the given metadata, its layer tensors stored as
// dtype. meta.HasV says whether WriteLayer will be given V tensors. The data goes to
// a hidden temporary file next to path (TempPath), which Close renames onto path.
func Create(path string, meta Meta, dtype half.DType) (*Writer, error) {
	if err := meta.Validate(); err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("kvtrace %s: dtype %q, want %s, %s or %s", path, dtype, half.F16, half.BF16, half.F32)
	}
	header, err := encodeHeader(meta, dtype)
	if err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	// O_EXCL with a random suffix: concurrent writers of one path never share a file.
	tmpPath := TempPath(path, strconv.FormatUint(rand.Uint64(), 36))
	file, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, fmt.Errorf("kvtrace %s: %w", path, err)
	}
	w := &Writer{path: path, tmpPath: tmpPath, file: file, buf: bufio.NewWriterSize(file, 1<<20),
		meta: meta, dtype: dtype}
	w.buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(header))))
	w.buf.Write(header) // bufio keeps the first error; check reports it
	if err := w.check(); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// WriteTokens writes the prompt and generated token ids, PromptLen+GenLen of them.
func (w *Writer) WriteTokens(tokens []int32) error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.tokensWritten {
		return fmt.Errorf("kvtrace %s: WriteTokens called twice", w.path)
	}
	if len(tokens) != w.meta.Tokens() {
		return fmt.Errorf("kvtrace %s: WriteTokens: %d tokens, want %d (prompt_len %d + gen_len %d)",
			w.path, len(tokens), w.meta.Tokens(), w.meta.PromptLen, w.meta.GenLen)
	}
	for _, tok := range tokens {
		w.buf.Write(binary.LittleEndian.AppendUint32(w.buf.AvailableBuffer(), uint32(tok)))
	}
	w.tokensWritten = true
	return w.check()
}

// WriteLayer converts one layer's tensors to the file's dtype (rounding to nearest,
// ties to even) and writes them. Layers come in order from 0; q, k and v each hold
// heads×tokens×head_dim values laid out [heads][tokens][head_dim], and v is nil
// exactly when the trace has no V tensors.
func (w *Writer) WriteLayer(layer int, q, k, v []float32) error {
	if err := w.checkLayer(layer, v != nil, [3]int{len(q), len(k), len(v)}); err != nil {
		return err
	}
	for _, t := range [][]float32{q, k, v}[:len(w.meta.kinds())] {
		w.writeFloats(t)
	}
	w.layersWritten++
	return w.check()
}

// WriteLayerEncoded is WriteLayer for tensors already in the file's dtype, as
// little-endian bytes: they are written as they are, with no conversion, so a
// producer that keeps its tensors in the trace's dtype writes them unchanged.
func (w *Writer) WriteLayerEncoded(layer int, q, k, v []byte) error {
	size := w.dtype.Size()
	var counts [3]int
	for i, t := range [][]byte{q, k, v} {
		if len(t)%size != 0 {
			return fmt.Errorf("kvtrace %s: WriteLayerEncoded(%d): %v has %d bytes, not a whole number of %s values",
				w.path, layer, []Kind{Q, K, V}[i], len(t), w.dtype)
		}
		counts[i] = len(t) / size
	}
	if err := w.checkLayer(layer, v != nil, counts); err != nil {
		return err
	}
	for _, t := range [][]byte{q, k, v}[:len(w.meta.kinds())] {
		w.buf.Write(t) // bufio keeps the first error; check reports it
	}
	w.layersWritten++
	return w.check()
}

// checkLayer checks that layer is the next to write and that its tensors, counts
// values each (q, k, v), have the metadata's shape.
func (w *Writer) checkLayer(layer int, hasV bool, counts [3]int) error {
	if err := w.usable(); err != nil {
		return err
	}
	if !w.tokensWritten {
		return fmt.Errorf("kvtrace %s: WriteLayer(%d) before WriteTokens", w.path, layer)
	}
	if w.layersWritten == w.meta.Layers {
		return fmt.Errorf("kvtrace %s: WriteLayer(%d): all %d layers are already written",
			w.path, layer, w.meta.Layers)
	}
	if layer != w.layersWritten {
		return fmt.Errorf("kvtrace %s: WriteLayer(%d): want layer %d next (layers are written in order)",
			w.path, layer, w.layersWritten)
	}
	if !hasV && w.meta.HasV {
		return fmt.Errorf("kvtrace %s: WriteLayer(%d): v is nil, but the metadata has HasV set", w.path, layer)
	}
	if hasV && !w.meta.HasV {
		return fmt.Errorf("kvtrace %s: WriteLayer(%d): v given, but the metadata has HasV unset", w.path, layer)
	}
	want := w.meta.Heads * w.meta.Tokens() * w.meta.HeadDim
	for i, kind := range w.meta.kinds() { // Q, K, V: the order of counts
		if counts[i] != want {
			return fmt.Errorf("kvtrace %s: WriteLayer(%d): %v has %d values, want %d (heads %d × tokens %d × head_dim %d)",
				w.path, layer, kind, counts[i], want, w.meta.Heads, w.meta.Tokens(), w.meta.HeadDim)
		}
	}
	return nil
}

// writeFloats converts values straight into the bufio buffer, flushing as it fills.
func (w *Writer) writeFloats(values []float32) {
	elemSize := w.dtype.Size()
	for len(values) > 0 {
		if w.buf.Available() < elemSize && w.buf.Flush() != nil {
			return // check reports the error
		}
		chunk := w.buf.AvailableBuffer()
		n := min(len(values), cap(chunk)/elemSize)
		chunk = chunk[:n*elemSize]
		w.dtype.Encode(chunk, values[:n])
		w.buf.Write(chunk)
		values = values[n:]
	}
}

// usable reports why the writer can take no more calls, if it cannot.
func (w *Writer) usable() error {
	if w.done {
		return fmt.Errorf("kvtrace %s: writer is closed", w.path)
	}
	return w.ioErr
}

// check records the buffered writer's first error, if any.
func (w *Writer) check() error {
	if w.ioErr == nil {
		if _, err := w.buf.Write(nil); err != nil {
			w.ioErr = fmt.Errorf("kvtrace %s: writing %s: %w", w.path, w.tmpPath, err)
		}
	}
	return w.ioErr
}

// Close checks that the tokens and every layer were written, flushes and syncs the
// temporary file and renames it onto the path, replacing any file there. On failure
// it removes the temporary file and leaves the path as it was.
func (w *Writer) Close() error {
	if w.done {
		return fmt.Errorf("kvtrace %s: writer is closed", w.path)
	}
	if err := w.finish(); err != nil {
		w.Abort()
		return err
	}
	w.done = true
	return nil
}

func (w *Writer) finish() error {
	if w.ioErr != nil {
		return w.ioErr
	}
	if !w.tokensWritten {
		return fmt.Errorf("kvtrace %s: closed before WriteTokens", w.path)
	}
	if w.layersWritten != w.meta.Layers {
		return fmt.Errorf("kvtrace %s: closed after %d of %d layers", w.path, w.layersWritten, w.meta.Layers)
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("kvtrace %s: writing %s: %w", w.path, w.tmpPath, err)
	}
	if err := w.file.Sync(); err != nil {
		return fmt.Errorf("kvtrace %s: %w", w.path, err)
	}
	if err := w.file.Close(); err != nil {
		return fmt.Errorf("kvtrace %s: %w", w.path, err)
	}
	if err := os.Rename(w.tmpPath, w.path); err != nil {
		return fmt.Errorf("kvtrace %s: %w", w.path, err)
	}
	return nil
}

// Abort abandons the trace and removes the temporary file. It does nothing after
// Close, so `defer w.Abort()` is the way to clean up on every error path.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.file.Close() // may already be closed by a failed Close; the error says nothing new
	os.Remove(w.tmpPath)
}

// Write writes a whole trace: tokens, then layer(l) for each layer in order. The
// callback may reuse its slices between calls.
func Write(path string, meta Meta, dtype half.DType, tokens []int32,
	layer func(l int) (q, k, v []float32, err error)) error {
	w, err := Create(path, meta, dtype)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteTokens(tokens); err != nil {
		return err
	}
	for l := range meta.Layers {
		q, k, v, err := layer(l)
		if err != nil {
			return fmt.Errorf("kvtrace %s: layer %d: %w", path, l, err)
		}
		if err := w.WriteLayer(l, q, k, v); err != nil {
			return err
		}
	}
	return w.Close()
}

// tempInfix separates a trace's name from the random suffix of its temporary file.
const tempInfix = ".tmp-"

// TempPath is where a writer of path keeps its data until Close: a hidden file in
// path's directory, so that a glob of trace names never matches it.
func TempPath(path, suffix string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+tempInfix+suffix)
}

// RemoveTemps removes the temporary files that writers killed before Close left
// in dir: hidden ones named by TempPath, and the visible path+".tmp-*" of kvsim
// versions before them. Call it only when no other writer uses dir. It returns how
// many it removed.
func RemoveTemps(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		name, _, isTemp := strings.Cut(strings.TrimPrefix(e.Name(), "."), tempInfix)
		if !isTemp || !strings.HasSuffix(name, ".safetensors") || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
