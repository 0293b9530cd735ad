package dataset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadJSONL(t *testing.T) {
	path := writeFile(t, "data.jsonl", `{"document": "First doc.", "summary": "One.", "id": "a1"}

{"document": "Second doc.", "summary": "Two.", "id": 17}
{"document": "Third doc.\nWith a newline.", "summary": "Three."}
`)
	all, err := ReadJSONL(path, DefaultFields, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		{Index: 0, Line: 1, ID: "a1", Document: "First doc.", Reference: "One."},
		{Index: 1, Line: 3, ID: "17", Document: "Second doc.", Reference: "Two."},
		{Index: 2, Line: 4, ID: "2", Document: "Third doc.\nWith a newline.", Reference: "Three."},
	}
	if len(all) != len(want) {
		t.Fatalf("read %d samples, want %d", len(all), len(want))
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("sample %d: %+v, want %+v", i, all[i], want[i])
		}
	}
	some, err := ReadJSONL(path, DefaultFields, 1, 1)
	if err != nil || len(some) != 1 || some[0] != want[1] {
		t.Errorf("offset 1, count 1: %+v, %v", some, err)
	}

	cnn := writeFile(t, "cnn.jsonl", `{"article": "Text.", "highlights": "Short."}`)
	got, err := ReadJSONL(cnn, Fields{Document: "article", Summary: "highlights"}, 0, 0)
	if err != nil || got[0].Document != "Text." || got[0].Reference != "Short." || got[0].ID != "0" {
		t.Errorf("custom fields: %+v, %v", got, err)
	}
	noSummary, err := ReadJSONL(cnn, Fields{Document: "article"}, 0, 0)
	if err != nil || noSummary[0].Reference != "" {
		t.Errorf("without a summary field: %+v, %v", noSummary, err)
	}
}

func TestReadJSONLErrors(t *testing.T) {
	cases := []struct {
		name, text string
		fields     Fields
		offset     int
		want       string
	}{
		{"bad JSON", "{\"document\": \"a\", \"summary\": \"b\"}\n{\"document\": \"a\",\n", DefaultFields, 0,
			"data.jsonl:2: not a JSON object"},
		{"not an object", `["document"]`, DefaultFields, 0, "data.jsonl:1: not a JSON object"},
		{"missing document", `{"article": "a", "summary": "b"}`, DefaultFields, 0,
			`data.jsonl:1: no field "document" (the record has ["article" "summary"])`},
		{"missing summary", `{"document": "a"}`, DefaultFields, 0, `data.jsonl:1: no field "summary"`},
		{"number document", `{"document": 3, "summary": "b"}`, DefaultFields, 0,
			`data.jsonl:1: field "document" is 3, want a string`},
		{"bad id", `{"document": "a", "summary": "b", "id": [1]}`, DefaultFields, 0,
			`data.jsonl:1: field "id" is [1], want a string or a number`},
		{"offset past the end", `{"document": "a", "summary": "b"}`, DefaultFields, 1, "no records from offset 1 (the file has 1)"},
		{"empty file", "\n\n", DefaultFields, 0, "no records from offset 0 (the file has 0)"},
		{"no document field name", `{}`, Fields{}, 0, "document field name is empty"},
	}
	for _, c := range cases {
		path := writeFile(t, "data.jsonl", c.text)
		_, err := ReadJSONL(path, c.fields, c.offset, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := ReadJSONL(filepath.Join(t.TempDir(), "missing.jsonl"), DefaultFields, 0, 0); err == nil ||
		!strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}
