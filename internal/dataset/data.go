package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// Fields names the JSON fields of a dataset record.
type Fields struct {
	Document string // required
	Summary  string // the reference summary; required unless empty
	ID       string // optional; absent ids are the record index
}

// DefaultFields are XSUM's field names.
var DefaultFields = Fields{Document: "document", Summary: "summary", ID: "id"}

// Sample is one record of a dataset.
type Sample struct {
	Index     int    // record number in the file, from 0 (blank lines not counted)
	Line      int    // line number in the file, from 1
	ID        string // the id field, or Index
	Document  string
	Reference string // the reference summary; empty without a summary field
}

// ReadJSONL reads records offset to offset+count-1 of a JSONL dataset (every record
// from offset when count is 0). Records before offset are still parsed, so an error
// anywhere up to the last record read is reported.
func ReadJSONL(path string, f Fields, offset, count int) ([]Sample, error) {
	if f.Document == "" {
		return nil, errors.New("dataset: the document field name is empty")
	}
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("dataset: offset %d and count %d must not be negative", offset, count)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, 1<<20)
	var samples []Sample
	index := 0
	for line := 1; count == 0 || len(samples) < count; line++ {
		text, err := r.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if trimmed := bytes.TrimSpace(text); len(trimmed) > 0 {
			s, perr := parseRecord(trimmed, f)
			if perr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, perr)
			}
			if index >= offset {
				s.Index, s.Line = index, line
				if s.ID == "" {
					s.ID = strconv.Itoa(index)
				}
				samples = append(samples, s)
			}
			index++
		}
		if err == io.EOF {
			break
		}
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s: no records from offset %d (the file has %d)", path, offset, index)
	}
	return samples, nil
}

// parseRecord reads one JSON object's fields.
func parseRecord(text []byte, f Fields) (Sample, error) {
	var record map[string]json.RawMessage
	if err := json.Unmarshal(text, &record); err != nil {
		return Sample{}, fmt.Errorf("not a JSON object: %w", err)
	}
	var s Sample
	var err error
	if s.Document, err = stringField(record, f.Document); err != nil {
		return Sample{}, err
	}
	if f.Summary != "" {
		if s.Reference, err = stringField(record, f.Summary); err != nil {
			return Sample{}, err
		}
	}
	if f.ID != "" {
		if raw, ok := record[f.ID]; ok {
			var n json.Number
			if json.Unmarshal(raw, &s.ID) != nil && json.Unmarshal(raw, &n) == nil {
				s.ID = n.String()
			}
			if s.ID == "" {
				return Sample{}, fmt.Errorf("field %q is %s, want a string or a number", f.ID, raw)
			}
		}
	}
	return s, nil
}

// stringField reads a required string field.
func stringField(record map[string]json.RawMessage, name string) (string, error) {
	raw, ok := record[name]
	if !ok {
		keys := make([]string, 0, len(record))
		for k := range record {
			keys = append(keys, strconv.Quote(k))
		}
		slices.Sort(keys)
		return "", fmt.Errorf("no field %q (the record has %v)", name, keys)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q is %.40s, want a string", name, raw)
	}
	return s, nil
}
