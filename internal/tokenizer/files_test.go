package tokenizer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteThenLoad(t *testing.T) {
	vocab, merges := TrainTiny(sampleCorpus, 400)
	dir := t.TempDir()
	if err := Write(dir, vocab, merges); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	direct := mustNew(t, vocab, merges)
	for _, s := range testTexts(100) {
		if got, want := loaded.Encode(s), direct.Encode(s); !slices.Equal(got, want) {
			t.Fatalf("%q: loaded %v, direct %v", s, got, want)
		}
	}

	mergesTxt, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(mergesTxt), "\n")
	if lines[0] != "#version: 0.2" || lines[1] != merges[0][0]+" "+merges[0][1] || len(lines) != len(merges)+2 || lines[len(lines)-1] != "" {
		t.Errorf("merges.txt starts %q and has %d lines, want the header, %d merges and a final newline", lines[:2], len(lines), len(merges))
	}
	vocabJSON, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vocabJSON), "\n  \"</s>\": 2,\n") {
		t.Errorf("vocab.json does not hold \"</s>\": 2 unescaped on its own line")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want vocab.json and merges.txt only", len(entries))
	}
	for _, e := range entries {
		if info, err := e.Info(); err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644", e.Name(), info.Mode(), err)
		}
	}

	// Writing again replaces both files.
	if err := Write(dir, baseVocab(nil), nil); err != nil {
		t.Fatal(err)
	}
	if again, err := Load(dir); err != nil || again.VocabSize() != 260 {
		t.Fatalf("after rewrite: %v", err)
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	spaced := baseVocab(nil)
	spaced["a b"] = 300
	spaced["a bc"] = 301
	for name, c := range map[string]struct {
		dir    string
		vocab  map[string]int
		merges [][2]string
		want   string
	}{
		"invalid vocab": {dir, map[string]int{"a": 0}, nil, `no token "Ā" for byte 0x00`},
		"whitespace":    {dir, spaced, [][2]string{{"a b", "c"}}, `token "a b" holds whitespace`},
		"missing dir":   {filepath.Join(dir, "nope"), baseVocab(nil), nil, "no such file or directory"},
	} {
		err := Write(c.dir, c.vocab, c.merges)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tokenizer: write "+c.dir+": ") {
			t.Errorf("%s: got %v, want an error naming %s and containing %q", name, err, c.dir, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files behind", len(entries))
	}
}

func TestLoadErrors(t *testing.T) {
	vocab, merges := TrainTiny("low lower lowest", 270)
	writeDir := func(t *testing.T, vocabJSON, mergesTxt *string) string {
		dir := t.TempDir()
		if err := Write(dir, vocab, merges); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]*string{"vocab.json": vocabJSON, "merges.txt": mergesTxt} {
			if content != nil {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(*content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		return dir
	}
	str := func(s string) *string { return &s }
	header := "#version: 0.2\n"
	cases := []struct {
		name      string
		vocab     *string
		merges    *string
		file      string // the file the error must name, with the line if any
		want      string
		notExists bool
	}{
		{name: "bad JSON", vocab: str(`{"a": 1,`), file: "vocab.json", want: "want a JSON object of token ids"},
		{name: "non-integer id", vocab: str(`{"a": "x"}`), file: "vocab.json", want: "want a JSON object of token ids"},
		{name: "missing byte", vocab: str(`{"</s>": 2}`), file: "vocab.json", want: `no token "Ā" for byte 0x00`},
		{name: "no header", merges: str("l o\n"), file: "merges.txt:1", want: `want a "#version: 0.2" header line, found "l o"`},
		{name: "three fields", merges: str(header + "l o\nlo w x\n"), file: "merges.txt:3", want: `want two tokens separated by a space, found "lo w x"`},
		{name: "one field", merges: str(header + "\nlo\n"), file: "merges.txt:3", want: `found "lo"`},
		{name: "no final newline", merges: str(header + "l o\nlo w"), file: "merges.txt:3", want: `last line "lo w" has no final newline`},
		{name: "unknown merge result", merges: str(header + "l o\nz q\n"), file: "merges.txt:3", want: `merge ("z" "q"): merged token "zq" is not in`},
		{name: "repeated merge", merges: str(header + "l o\n\nl o\n"), file: "merges.txt:4", want: `merge ("l" "o") repeats`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, c.vocab, c.merges)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, c.file)+":") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error naming %s and containing %q", err, c.file, c.want)
			}
		})
	}

	// The merges error names the vocab file the token is missing from.
	dir := writeDir(t, nil, str(header+"z q\n"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not in "+filepath.Join(dir, "vocab.json")) {
		t.Errorf("unknown merge result: got %v, want it to name vocab.json", err)
	}
	// Blank lines and CRLF line ends are accepted.
	dir = writeDir(t, nil, str("#version: 0.2\r\n\r\nl o\r\n\n"))
	if _, err := Load(dir); err != nil {
		t.Errorf("CRLF merges.txt: %v", err)
	}

	for _, name := range []string{"vocab.json", "merges.txt"} {
		dir := writeDir(t, nil, nil)
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("missing %s: got %v, want a not-exist error naming the file", name, err)
		}
	}
}
