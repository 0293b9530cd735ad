// Package tokenizer turns text into OPT token ids and back: GPT-2 byte-level BPE read
// from a Hugging Face checkpoint's vocab.json and merges.txt, producing the ids that
// transformers' slow GPT2Tokenizer produces for OPT checkpoints.
//
// Encoding runs the same three steps as transformers:
//
//  1. OPT's special tokens ("</s>", which is OPT's bos, eos and unk, and "<pad>")
//     written literally in the text are cut out first and become single ids, as
//     transformers does for its added tokens. No whitespace is stripped around them
//     (OPT's config sets lstrip and rstrip to false). "<s>" and "<unk>" are ordinary
//     vocabulary entries for OPT, not special tokens, so in text they are spelled out
//     by BPE like any other characters.
//  2. Each stretch of text between special tokens is split into pieces by GPT-2's
//     pattern, evaluated as Python's regex module does (see nextWord): \s is the
//     Unicode White_Space property (U+0085 and U+00A0 included, U+001C-U+001F and
//     U+FEFF excluded), \p{L} and \p{N} are the Unicode letter and number
//     categories, and contractions are case-sensitive ("'S" is not one).
//  3. Each piece is mapped byte by byte onto GPT-2's printable byte alphabet and
//     merged by merge rank, every occurrence of the best-ranked pair at a time.
//
// Decode maps ids back to bytes and replaces invalid UTF-8 the way Python's
// bytes.decode(errors="replace") does (one U+FFFD per maximal invalid subpart), which
// is what transformers' decode does for OPT with clean_up_tokenization_spaces=False.
// Decode never applies that cleanup, so Decode(Encode(s)) == s for valid UTF-8 s.
//
// Merge ranks, not vocabulary ids, drive the merges, so the same merges.txt encodes
// the same token strings under any id numbering: OPT's vocab.json numbers GPT-2's
// tokens differently from GPT-2's encoder.json, and a Tokenizer reads either.
//
// A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// OPT's special tokens as they appear in its vocab.json.
const (
	eosToken = "</s>"  // OPT's bos, eos and unk token
	padToken = "<pad>" // OPT's padding token
)

// maxID bounds the ids a vocabulary may use, so that a corrupt vocab.json cannot make
// New allocate an id table of arbitrary size. Real vocabularies stay far below it.
const maxID = 1<<20 - 1

// Tokenizer encodes text into token ids and decodes ids back into text.
type Tokenizer struct {
	vocab    map[string]int
	tokens   []string // token string by id; "" where the vocabulary has no such id
	raw      [][]byte // bytes each token stands for; nil if its string is not byte-level
	byteIDs  [256]int32
	merges   map[pairKey]merge
	specials []special // matched literally in the input before pre-tokenization
	eos, pad int
	cache    wordCache
}

// special is a token that is cut out of raw text as a whole.
type special struct {
	text string
	id   int
}

// New builds a tokenizer from a vocabulary (token string to id, as in vocab.json) and
// merges in rank order (as in merges.txt, first line first).
//
// The vocabulary must contain a token for each of the 256 byte values, the result of
// every merge and "</s>". Ids must be distinct and in [0, 2^20); gaps are allowed.
// Merges must be distinct and both halves must be tokens. These rules guarantee that
// every input encodes without an unknown token.
func New(vocab map[string]int, merges [][2]string) (*Tokenizer, error) {
	t, err := build(vocab, merges, "vocab", func(i int) string { return fmt.Sprintf("merge %d", i) })
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// build is New with the vocabulary and the merge locations named by the caller, so
// that Load can report file names and lines instead of slice indices.
func build(vocab map[string]int, merges [][2]string, vocabName string, where func(i int) string) (*Tokenizer, error) {
	t := &Tokenizer{vocab: make(map[string]int, len(vocab))}
	if err := t.setVocab(vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", vocabName, err)
	}
	var ok bool
	if t.eos, ok = t.vocab[eosToken]; !ok {
		return nil, fmt.Errorf("%s: no %q token, which OPT uses as bos and eos", vocabName, eosToken)
	}
	if err := t.setMerges(merges, vocabName, where); err != nil {
		return nil, err
	}
	t.specials = append(t.specials, special{eosToken, t.eos})
	t.pad = -1
	if id, ok := t.vocab[padToken]; ok {
		t.pad = id
		t.specials = append(t.specials, special{padToken, id})
	}
	t.cache.m = make(map[string][]int)
	return t, nil
}

func (t *Tokenizer) setVocab(vocab map[string]int) error {
	size := 0
	for tok, id := range vocab {
		if tok == "" {
			return fmt.Errorf("empty token (id %d)", id)
		}
		if id < 0 || id > maxID {
			return fmt.Errorf("token %q has id %d, outside [0, %d]", tok, id, maxID)
		}
		size = max(size, id+1)
		t.vocab[tok] = id
	}
	t.tokens = make([]string, size)
	t.raw = make([][]byte, size)
	for tok, id := range t.vocab {
		if prev := t.tokens[id]; prev != "" {
			return fmt.Errorf("tokens %q and %q share id %d", min(prev, tok), max(prev, tok), id)
		}
		t.tokens[id] = tok
		t.raw[id] = decodeByteLevel(tok)
	}
	for b := range 256 {
		id, ok := t.vocab[byteChars[b]]
		if !ok {
			return fmt.Errorf("no token %q for byte 0x%02x", byteChars[b], b)
		}
		t.byteIDs[b] = int32(id)
	}
	return nil
}

func (t *Tokenizer) setMerges(merges [][2]string, vocabName string, where func(i int) string) error {
	t.merges = make(map[pairKey]merge, len(merges))
	seen := make(map[pairKey]int, len(merges))
	for i, m := range merges {
		var ids [2]int
		for j, part := range m {
			id, ok := t.vocab[part]
			if !ok {
				return fmt.Errorf("%s (%q %q): token %q is not in %s", where(i), m[0], m[1], part, vocabName)
			}
			ids[j] = id
		}
		merged, ok := t.vocab[m[0]+m[1]]
		if !ok {
			return fmt.Errorf("%s (%q %q): merged token %q is not in %s", where(i), m[0], m[1], m[0]+m[1], vocabName)
		}
		key := makePairKey(ids[0], ids[1])
		if first, dup := seen[key]; dup {
			return fmt.Errorf("%s (%q %q) repeats %s", where(i), m[0], m[1], where(first))
		}
		seen[key] = i
		t.merges[key] = merge{rank: int32(i), id: int32(merged)}
	}
	return nil
}

// Encode returns the token ids of text, without a BOS token. Bytes of invalid UTF-8
// are encoded as they are (each as a separate non-letter character), so Decode will
// show them as U+FFFD.
func (t *Tokenizer) Encode(text string) []int {
	return t.appendEncoded(make([]int, 0, len(text)/3+1), text)
}

// EncodeWithBOS returns the token ids of text preceded by the BOS id, as transformers
// encodes a prompt for OPT (add_bos_token=true).
func (t *Tokenizer) EncodeWithBOS(text string) []int {
	ids := make([]int, 1, len(text)/3+2)
	ids[0] = t.eos
	return t.appendEncoded(ids, text)
}

// appendEncoded cuts the special tokens out of text and BPE-encodes the rest.
func (t *Tokenizer) appendEncoded(ids []int, text string) []int {
	// next[i] is where specials[i] next occurs at or after pos: -1 if nowhere, -2 if
	// not searched yet. Keeping it avoids searching the text again after each match.
	var nextBuf [2]int
	next := nextBuf[:0]
	for range t.specials {
		next = append(next, -2)
	}
	pos := 0
	for {
		best, bestLen, bestID := -1, 0, 0
		for i, sp := range t.specials {
			if next[i] != -1 && next[i] < pos {
				next[i] = indexFrom(text, sp.text, pos)
			}
			at := next[i]
			if at >= 0 && (best < 0 || at < best || at == best && len(sp.text) > bestLen) {
				best, bestLen, bestID = at, len(sp.text), sp.id
			}
		}
		if best < 0 {
			return t.appendPlain(ids, text[pos:])
		}
		ids = t.appendPlain(ids, text[pos:best])
		ids = append(ids, bestID)
		pos = best + bestLen
	}
}

// indexFrom returns the index of the first sub at or after from in s, or -1.
func indexFrom(s, sub string, from int) int {
	i := strings.Index(s[from:], sub)
	if i < 0 {
		return -1
	}
	return from + i
}

// appendPlain encodes text that holds no special token.
func (t *Tokenizer) appendPlain(ids []int, text string) []int {
	for len(text) > 0 {
		n := nextWord(text)
		ids = t.appendWord(ids, text[:n])
		text = text[n:]
	}
	return ids
}

// Decode returns the text that ids stand for. Invalid UTF-8 in the decoded bytes
// becomes U+FFFD, one per maximal invalid subpart as in Python. Special tokens are
// decoded to their text ("</s>"). It fails on an id that is not in the vocabulary and
// on a token whose string is not made of GPT-2's byte alphabet.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	buf := make([]byte, 0, 4*len(ids))
	for i, id := range ids {
		if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
			return "", fmt.Errorf("tokenizer: decode: id %d at position %d is not in the vocab", id, i)
		}
		raw := t.raw[id]
		if raw == nil {
			return "", fmt.Errorf("tokenizer: decode: token %q (id %d) is not spelled in GPT-2's byte alphabet", t.tokens[id], id)
		}
		buf = append(buf, raw...)
	}
	if utf8.Valid(buf) {
		return string(buf), nil
	}
	return string(replaceInvalidUTF8(buf)), nil
}

// VocabSize returns one more than the largest token id, the number of rows a model's
// embedding needs. For vocabularies numbered without gaps (all real ones) it is the
// number of tokens, which transformers reports as vocab_size.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the id EncodeWithBOS puts first: OPT's "</s>".
func (t *Tokenizer) BOS() int { return t.eos }

// EOS returns the id of "</s>", which ends OPT's generations.
func (t *Tokenizer) EOS() int { return t.eos }

// PAD returns the id of "<pad>", or -1 if the vocabulary has none.
func (t *Tokenizer) PAD() int { return t.pad }

// DecodeKnown decodes ids as generated, leaving out those the tokenizer lacks: a
// model's vocabulary may be larger than its tokenizer's (OPT's 50272 rows hold
// 50265 tokens), and the Hugging Face tokenizers skip such ids too.
func (t *Tokenizer) DecodeKnown(ids []int32) (string, error) {
	known := make([]int, 0, len(ids))
	for _, id := range ids {
		if t.Token(int(id)) != "" {
			known = append(known, int(id))
		}
	}
	return t.Decode(known)
}

// Token returns the vocabulary string of id in GPT-2's byte alphabet (a leading space
// shows as "Ġ"), or "" if id is not in the vocabulary.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}
