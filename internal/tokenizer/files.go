package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/kvsim/kvsim/internal/atomicfile"
)

// File names of a Hugging Face GPT-2-style tokenizer.
const (
	vocabFile  = "vocab.json"
	mergesFile = "merges.txt"
)

// mergesHeader is the first line of merges.txt as GPT-2 and transformers write it.
const mergesHeader = "#version: 0.2"

// Load reads vocab.json and merges.txt from a Hugging Face checkpoint directory and
// builds a tokenizer with New. Errors name the file, and for merges.txt the line.
//
// merges.txt must start with a "#version" line and end with a newline. transformers'
// slow tokenizer drops the first and the last line of the file unconditionally while
// its fast tokenizer skips only "#version" lines, so a file breaking either rule is
// read differently by the two and is rejected here rather than guessed at. Blank
// lines are ignored.
func Load(dir string) (*Tokenizer, error) {
	t, err := loadFiles(filepath.Join(dir, vocabFile), filepath.Join(dir, mergesFile))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// loadFiles builds a tokenizer from a vocab.json-format and a merges.txt-format file.
func loadFiles(vocabPath, mergesPath string) (*Tokenizer, error) {
	vocab, err := readVocab(vocabPath)
	if err != nil {
		return nil, err
	}
	merges, lines, err := readMerges(mergesPath)
	if err != nil {
		return nil, err
	}
	return build(vocab, merges, vocabPath, func(i int) string { return fmt.Sprintf("%s:%d: merge", mergesPath, lines[i]) })
}

func readVocab(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // the *PathError names the file
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of token ids: %w", path, err)
	}
	return vocab, nil
}

// readMerges returns the merges of a merges.txt file in rank order, with the 1-based
// line number of each.
func readMerges(path string) ([][2]string, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	text := string(data)
	header, text, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(header, "#version") {
		return nil, nil, fmt.Errorf("%s:1: want a %q header line, found %q", path, mergesHeader, header)
	}
	lines := strings.Split(text, "\n")
	if last := lines[len(lines)-1]; strings.TrimSpace(last) != "" {
		return nil, nil, fmt.Errorf("%s:%d: last line %q has no final newline", path, len(lines)+1, last)
	}
	var merges [][2]string
	var lineNums []int
	for i, line := range lines {
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
			continue
		case 2:
			merges = append(merges, [2]string{fields[0], fields[1]})
			lineNums = append(lineNums, i+2)
		default:
			return nil, nil, fmt.Errorf("%s:%d: want two tokens separated by a space, found %q", path, i+2, line)
		}
	}
	return merges, lineNums, nil
}

// Write stores vocab and merges in dir as vocab.json and merges.txt in the format
// transformers writes (keys sorted, two-space indent; a "#version: 0.2" header), so
// that Load and transformers read them back. It first checks them as New does, and
// rejects merge halves holding whitespace, which merges.txt cannot represent. Each
// file is replaced atomically (written to a temporary file, then renamed), so a
// reader never sees a partial file; the pair is not replaced as one.
func Write(dir string, vocab map[string]int, merges [][2]string) error {
	if err := write(dir, vocab, merges); err != nil {
		return fmt.Errorf("tokenizer: write %s: %w", dir, err)
	}
	return nil
}

func write(dir string, vocab map[string]int, merges [][2]string) error {
	for i, m := range merges {
		for _, part := range m {
			if strings.ContainsFunc(part, unicode.IsSpace) {
				return fmt.Errorf("merge %d (%q %q): token %q holds whitespace", i, m[0], m[1], part)
			}
		}
	}
	if _, err := build(vocab, merges, "vocab", func(i int) string { return fmt.Sprintf("merge %d", i) }); err != nil {
		return err
	}

	var vocabJSON bytes.Buffer
	enc := json.NewEncoder(&vocabJSON)
	enc.SetEscapeHTML(false) // keep "</s>" readable, as Python's json.dumps does
	enc.SetIndent("", "  ")
	if err := enc.Encode(vocab); err != nil { // map keys come out sorted
		return err
	}
	var mergesTxt bytes.Buffer
	mergesTxt.WriteString(mergesHeader + "\n")
	for _, m := range merges {
		mergesTxt.WriteString(m[0] + " " + m[1] + "\n")
	}

	if err := atomicfile.WriteBytes(filepath.Join(dir, vocabFile), vocabJSON.Bytes()); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, mergesFile), mergesTxt.Bytes())
}
