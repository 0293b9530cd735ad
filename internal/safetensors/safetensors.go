// Package safetensors reads the layout shared by kvsim's traces and Hugging Face
// checkpoints: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the data. It reads the header strictly
// (one object, no duplicate keys, well-formed entries); what the tensors must be is
// up to the format built on it (sim/kvtrace, internal/checkpoint).
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

const (
	// MaxHeader bounds the JSON header, as the safetensors format does, so that a
	// corrupt length cannot make a reader allocate or scan gigabytes.
	MaxHeader = 100 << 20
	// Align is the alignment of the data buffer within the file, as the safetensors
	// writers pad the header.
	Align = 8
	// MetadataKey names the header's block of string metadata.
	MetadataKey = "__metadata__"
)

// Entry is one tensor's entry in a header.
type Entry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// dtypeSizes maps the safetensors dtype names to their element sizes.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// DTypeSize is the element size of a dtype by its safetensors name; false for a
// name the format does not define.
func DTypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return n, ok
}

// Split cuts a whole file held in memory into its JSON header and its data buffer,
// checking the header length against the file and MaxHeader.
func Split(file []byte) (header, data []byte, err error) {
	if len(file) < 8 {
		return nil, nil, fmt.Errorf("truncated: file has %d bytes, fewer than the 8-byte header length", len(file))
	}
	n := binary.LittleEndian.Uint64(file)
	if n > MaxHeader {
		return nil, nil, fmt.Errorf("header length %d is absurd (the limit is %d bytes)", n, MaxHeader)
	}
	if int(n) > len(file)-8 {
		return nil, nil, fmt.Errorf("truncated: header length says %d bytes of header, file has %d after the length", n, len(file)-8)
	}
	return file[8 : 8+n], file[8+n:], nil
}

// ParseHeader parses a JSON header into its tensor entries and its metadata block
// (hasMetadata tells whether there is one), rejecting duplicate keys, which
// encoding/json would silently collapse.
func ParseHeader(header []byte) (entries map[string]Entry, metadata map[string]string, hasMetadata bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil {
		return nil, nil, false, fmt.Errorf("invalid header JSON: %w", err)
	} else if tok != json.Delim('{') {
		return nil, nil, false, fmt.Errorf("invalid header JSON: want an object, got %v", tok)
	}
	entries = map[string]Entry{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false, fmt.Errorf("invalid header JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, false, fmt.Errorf("invalid header JSON: want a key, got %v", tok)
		}
		if key == MetadataKey {
			if hasMetadata {
				return nil, nil, false, fmt.Errorf("invalid header JSON: duplicate key %q", key)
			}
			hasMetadata = true
			if err := dec.Decode(&metadata); err != nil {
				return nil, nil, false, fmt.Errorf("metadata: want an object of strings: %w", err)
			}
			continue
		}
		if _, dup := entries[key]; dup {
			return nil, nil, false, fmt.Errorf("invalid header JSON: duplicate key %q", key)
		}
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, nil, false, fmt.Errorf("tensor %s: invalid entry: %w", key, err)
		}
		entries[key] = e
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, false, fmt.Errorf("invalid header JSON: %w", err)
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, false, fmt.Errorf("invalid header JSON after the object: %w", err)
		}
		return nil, nil, false, fmt.Errorf("invalid header JSON: %v after the object", tok)
	}
	return entries, metadata, hasMetadata, nil
}
