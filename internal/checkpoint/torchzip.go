package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strings"
)

// parseTorchZip indexes the tensors of a torch.save archive held in memory. Storages
// stored uncompressed, which is how torch writes them, are sliced out of file without
// a copy; a compressed one is read once into memory and shared by its tensors.
func parseTorchZip(file []byte) ([]storedTensor, error) {
	// torch.load tells its two formats apart by the same four bytes.
	if !bytes.HasPrefix(file, []byte("PK\x03\x04")) {
		if len(file) > 0 && file[0] == 0x80 {
			return nil, errors.New("a pickle in torch's legacy (pre-1.6) format, which is not supported: " +
				"re-save it with a newer torch or convert it to safetensors")
		}
		return nil, fmt.Errorf("not a zip archive (the file starts with %q)", file[:min(len(file), 4)])
	}
	zr, err := zip.NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		return nil, fmt.Errorf("not a readable zip archive (truncated?): %w", err)
	}
	if len(zr.File) == 0 {
		return nil, errors.New("empty zip archive")
	}
	// Like torch, take the folder of the first entry as the archive's name: it is the
	// saved file's base name for older torch and "archive" for newer.
	archive, _, found := strings.Cut(zr.File[0].Name, "/")
	if !found {
		return nil, fmt.Errorf("zip entry %q is not in a folder, as torch.save writes them", zr.File[0].Name)
	}
	records := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if name, ok := strings.CutPrefix(f.Name, archive+"/"); ok {
			records[name] = f
		}
	}
	pklFile, ok := records["data.pkl"]
	if !ok {
		return nil, fmt.Errorf("no %s/data.pkl: not a torch.save archive", archive)
	}
	pkl, err := recordBytes(file, pklFile, MaxPickleBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pklFile.Name, err)
	}
	pickled, err := unpickleStateDict(pkl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pklFile.Name, err)
	}
	storages := make(map[string][]byte)
	tensors := make([]storedTensor, 0, len(pickled))
	for _, t := range pickled {
		data, ok := storages[t.storage.key]
		if !ok {
			if data, err = storageBytes(file, records, archive, t.storage); err != nil {
				return nil, fmt.Errorf("tensor %s: %w", t.name, err)
			}
			storages[t.storage.key] = data
		}
		view, err := t.view(data)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", t.name, err)
		}
		tensors = append(tensors, view)
	}
	slices.SortFunc(tensors, func(a, b storedTensor) int { return strings.Compare(a.name, b.name) })
	return tensors, nil
}

// storageBytes returns the bytes of storage s.
func storageBytes(file []byte, records map[string]*zip.File, archive string, s *pickledStorage) ([]byte, error) {
	f, ok := records["data/"+s.key]
	if !ok {
		return nil, fmt.Errorf("storage %s/data/%s is missing from the archive", archive, s.key)
	}
	limit := int64(MaxCopyBytes)
	if want, ok := checkedProduct([]int{s.numel, dtypeSize(s.dtype)}); ok && int64(want) < limit {
		limit = int64(want) // view refuses any other size; reading more would only waste memory
	}
	if f.Method == zip.Store {
		limit = math.MaxInt64 // mapped, not copied
	}
	data, err := recordBytes(file, f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return data, nil
}

// Limits on what a torch archive may make kvsim hold in memory. The pickle of
// opt-66b's state dict is under 100 KiB; torch never compresses a record, and
// opt-66b's largest tensor is 0.9 GiB in f16.
const (
	MaxPickleBytes = 64 << 20 // data.pkl, stored or compressed
	MaxCopyBytes   = 1 << 30  // one compressed storage record, or one non-contiguous tensor
)

// view checks that t is a view inside data, its storage's bytes, and returns it: a
// slice of data when it is contiguous, else a contiguous copy, as transformers'
// load_state_dict copies any view into its parameters.
func (t pickledTensor) view(data []byte) (storedTensor, error) {
	size := dtypeSize(t.storage.dtype)
	if want, ok := checkedProduct([]int{t.storage.numel, size}); !ok || len(data) != want {
		return storedTensor{}, fmt.Errorf("storage %s holds %d bytes, the pickle says %d elements of %s",
			t.storage.key, len(data), t.storage.numel, t.storage.dtype)
	}
	numel, ok := checkedProduct(t.shape)
	if !ok {
		return storedTensor{}, fmt.Errorf("size %v has too many elements", t.shape)
	}
	stored := storedTensor{name: t.name, dtype: t.storage.dtype, shape: t.shape}
	if numel == 0 || contiguous(t.shape, t.stride) {
		if t.offset > t.storage.numel || numel > t.storage.numel-t.offset {
			return storedTensor{}, fmt.Errorf("elements [%d, %d+%d) run past the %d of storage %s",
				t.offset, t.offset, numel, t.storage.numel, t.storage.key)
		}
		begin, end := t.offset*size, (t.offset+numel)*size
		stored.data = data[begin:end:end]
		return stored, nil
	}
	// The last element the view reaches, with every stride checked on the way.
	last := t.offset
	for i, n := range t.shape {
		if t.stride[i] < 0 || (n > 1 && t.stride[i] > (t.storage.numel-last)/(n-1)) {
			return storedTensor{}, fmt.Errorf("stride %v of size %v at offset %d runs past the %d elements of storage %s",
				t.stride, t.shape, t.offset, t.storage.numel, t.storage.key)
		}
		last += (n - 1) * t.stride[i]
	}
	if last >= t.storage.numel {
		return storedTensor{}, fmt.Errorf("stride %v of size %v at offset %d runs past the %d elements of storage %s",
			t.stride, t.shape, t.offset, t.storage.numel, t.storage.key)
	}
	if numel > MaxCopyBytes/size {
		return storedTensor{}, fmt.Errorf("a non-contiguous tensor of %d elements, more than the %d bytes kvsim copies", numel, MaxCopyBytes)
	}
	stored.data = gather(data, size, t.offset, t.shape, t.stride)
	return stored, nil
}

// gather copies the elements of a strided view, of size bytes each, in row-major
// order.
func gather(data []byte, size, offset int, shape, stride []int) []byte {
	numel, _ := checkedProduct(shape)
	out := make([]byte, 0, numel*size)
	index := make([]int, len(shape)) // the element's position, last dimension fastest
	for range numel {
		at := offset
		for i, j := range index {
			at += j * stride[i]
		}
		out = append(out, data[at*size:(at+1)*size]...)
		for i := len(index) - 1; i >= 0; i-- {
			if index[i]++; index[i] < shape[i] {
				break
			}
			index[i] = 0
		}
	}
	return out
}

// contiguous reports whether stride is the row-major stride of shape; dimensions of
// size 1 may have any stride, as in torch.
func contiguous(shape, stride []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// recordBytes returns the contents of a zip entry, of at most limit bytes: a slice
// of file when it is stored uncompressed, else a fresh copy.
//
// Stored entries are not checked against their CRC, which would read the whole model
// at load time.
func recordBytes(file []byte, f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than the %d this record may hold", f.UncompressedSize64, limit)
	}
	if f.Method == zip.Store {
		offset, err := f.DataOffset()
		if err != nil {
			return nil, err
		}
		size := f.UncompressedSize64
		if f.CompressedSize64 != size {
			return nil, fmt.Errorf("stored entry has %d compressed bytes, %d uncompressed", f.CompressedSize64, size)
		}
		if offset < 0 || size > uint64(len(file)) || uint64(offset) > uint64(len(file))-size {
			return nil, fmt.Errorf("%d bytes at offset %d run past the %d-byte file: truncated?", size, offset, len(file))
		}
		return file[offset : uint64(offset)+size : uint64(offset)+size], nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// ReadAll grows with the data actually inflated, so a lying size cannot make it
	// allocate up front; reading to EOF makes archive/zip check the CRC.
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("inflates to more than the %d bytes this record may hold", limit)
	}
	return data, nil
}

// torchAlignment is the offset alignment of every record's data in archives torch
// writes, so that mapped storages are aligned for any dtype.
const torchAlignment = 64

// torchFormatVersion is the content of the version record torch.save writes.
const torchFormatVersion = "3\n"

// storageSource is a storage to write into a torch archive: its key and a function
// producing its bytes, called once when the writer reaches it.
type storageSource struct {
	key   string
	bytes func() ([]byte, error)
}

// writeTorchZip writes a torch.save archive of a state dict to w, laid out as torch
// writes one: <archive>/data.pkl, <archive>/byteorder, the storages as
// <archive>/data/<key> in key order, then <archive>/version; every record stored
// uncompressed with its data aligned to 64 bytes by a padding extra field.
func writeTorchZip(w io.Writer, archive string, tensors []pickledTensor, storages []storageSource) error {
	pkl, err := pickleStateDict(tensors)
	if err != nil {
		return err
	}
	cw := &countingWriter{w: w}
	zw := zip.NewWriter(cw)
	write := func(name string, data []byte) error {
		if err := writeAlignedRecord(zw, cw, archive+"/"+name, data); err != nil {
			return fmt.Errorf("%s/%s: %w", archive, name, err)
		}
		return nil
	}
	if err := write("data.pkl", pkl); err != nil {
		return err
	}
	if err := write("byteorder", []byte("little")); err != nil {
		return err
	}
	for _, s := range slices.SortedFunc(slices.Values(storages), func(a, b storageSource) int {
		return strings.Compare(a.key, b.key)
	}) {
		data, err := s.bytes()
		if err != nil {
			return fmt.Errorf("%s/data/%s: %w", archive, s.key, err)
		}
		if err := write("data/"+s.key, data); err != nil {
			return err
		}
	}
	if err := write("version", []byte(torchFormatVersion)); err != nil {
		return err
	}
	return zw.Close()
}

// writeAlignedRecord adds an uncompressed entry whose data starts at a multiple of
// torchAlignment, padding the local header with an extra field of ID "FB" as torch
// does.
func writeAlignedRecord(zw *zip.Writer, cw *countingWriter, name string, data []byte) error {
	if err := zw.Flush(); err != nil { // so cw.n is where the local header goes
		return err
	}
	const localHeaderLen, extraHeaderLen = 30, 4
	start := cw.n + localHeaderLen + int64(len(name)) + extraHeaderLen
	pad := (torchAlignment - start%torchAlignment) % torchAlignment
	extra := make([]byte, extraHeaderLen+pad)
	copy(extra, "FB")
	binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
	for i := extraHeaderLen; i < len(extra); i++ {
		extra[i] = 'Z'
	}
	fh := &zip.FileHeader{
		Name:               name,
		Method:             zip.Store,
		CRC32:              crc32.ChecksumIEEE(data),
		CompressedSize64:   uint64(len(data)),
		UncompressedSize64: uint64(len(data)),
		Extra:              extra,
		CreatorVersion:     20,
		ReaderVersion:      20,
	}
	if len(data) >= math.MaxUint32 {
		fh.ReaderVersion = 45 // zip64
	}
	fw, err := zw.CreateRaw(fh)
	if err != nil {
		return err
	}
	_, err = fw.Write(data)
	return err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
