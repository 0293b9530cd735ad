package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// baseVocab returns OPT's four special tokens (ids 0-3) and the 256 byte tokens (ids
// 4-259), then the result of each merge, as a hand-made checkpoint would have them.
func baseVocab(merges [][2]string) map[string]int {
	vocab := map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	for b := range 256 {
		vocab[byteChars[b]] = 4 + b
	}
	for _, m := range merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = len(vocab)
		}
	}
	return vocab
}

func mustNew(t testing.TB, vocab map[string]int, merges [][2]string) *Tokenizer {
	t.Helper()
	tok, err := New(vocab, merges)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenStrings spells ids as vocabulary strings, for readable failures.
func tokenStrings(tok *Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.Token(id)
	}
	return out
}

func TestByteAlphabet(t *testing.T) {
	// Values from GPT-2's bytes_to_unicode: printable Latin-1 maps to itself, the 68
	// other bytes to U+0100 upwards in byte order (0x00-0x20, 0x7F, 0x80-0xA0, 0xAD).
	cases := map[byte]rune{
		'!': '!', 'A': 'A', '~': '~', 0xA1: '¡', 0xAC: '¬', 0xAE: '®', 0xFF: 'ÿ',
		0x00: 0x100, '\n': 0x10A, ' ': 0x120, 0x7F: 0x121, 0x80: 0x122, 0xA0: 0x142, 0xAD: 0x143,
	}
	for b, want := range cases {
		if got := byteChars[b]; got != string(want) {
			t.Errorf("byte 0x%02x: got %q, want %q", b, got, string(want))
		}
	}
	seen := make(map[string]bool)
	for b := range 256 {
		c := byteChars[b]
		if seen[c] || utf8.RuneCountInString(c) != 1 || byteOf[[]rune(c)[0]] != byte(b) {
			t.Fatalf("byte 0x%02x: %q is not a distinct single character that maps back", b, c)
		}
		seen[c] = true
	}
}

func TestEncodeHandChecked(t *testing.T) {
	merges := [][2]string{
		{"l", "o"},    // 0
		{"lo", "w"},   // 1
		{"e", "r"},    // 2
		{"Ġ", "low"},  // 3
		{"low", "er"}, // 4
		{"a", "a"},    // 5
		{"Ġ", "b"},    // 6
	}
	tok := mustNew(t, baseVocab(merges), merges)
	cases := []struct {
		text string
		want []string
	}{
		// l o w e r -> lo w e r -> low e r -> low er -> lower
		{"lower", []string{"lower"}},
		// Ġ l o w e r -> Ġ lo w e r -> Ġ low e r -> Ġ low er (rank 2) -> Ġlow er (rank 3
		// beats "low er" at rank 4): ranks decide, not the longest token.
		{" lower", []string{"Ġlow", "er"}},
		// every occurrence of the best pair merges in the same step
		{"lowlow", []string{"low", "low"}},
		// overlapping occurrences merge left to right
		{"aaa", []string{"aa", "a"}},
		{"aaaa", []string{"aa", "aa"}},
		// no merge applies across pieces: "lo" and "w" are split by the pattern
		{"lo-w", []string{"lo", "-", "w"}},
		// special tokens are cut out first; the text around them is split on its own,
		// so the space before "</s>" is a piece of its own and no space is stripped
		{"x</s>y", []string{"x", "</s>", "y"}},
		{"a </s> b", []string{"a", "Ġ", "</s>", "Ġb"}},
		{"<pad><pad>", []string{"<pad>", "<pad>"}},
		// "<s>" and "<unk>" are not special for OPT and are spelled out
		{"<s>", []string{"<", "s", ">"}},
		{"</s", []string{"<", "/", "s"}},
		// bytes of a multi-byte character become their byte tokens (é is C3 A9)
		{"é", []string{"Ã", "©"}},
		{"", nil},
	}
	for _, c := range cases {
		got := tokenStrings(tok, tok.Encode(c.text))
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("Encode(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if got, want := tok.EncodeWithBOS("lower"), []int{2, tok.vocab["lower"]}; !slices.Equal(got, want) {
		t.Errorf("EncodeWithBOS(lower) = %v, want %v", got, want)
	}
	if tok.BOS() != 2 || tok.EOS() != 2 || tok.PAD() != 1 || tok.VocabSize() != 260+7 {
		t.Errorf("BOS %d EOS %d PAD %d VocabSize %d, want 2 2 1 267", tok.BOS(), tok.EOS(), tok.PAD(), tok.VocabSize())
	}
	if tok.Token(-1) != "" || tok.Token(tok.VocabSize()) != "" || tok.Token(4+' ') != "Ġ" {
		t.Errorf("Token out of range or of byte ' ' is wrong")
	}
}

func TestSpecialTokensFollowTheVocab(t *testing.T) {
	// Ids come from the vocabulary, not from OPT's usual numbering; without "<pad>"
	// the text "<pad>" is ordinary text.
	vocab := map[string]int{"</s>": 300}
	for b := range 256 {
		vocab[byteChars[b]] = b
	}
	tok := mustNew(t, vocab, nil)
	if tok.BOS() != 300 || tok.EOS() != 300 || tok.PAD() != -1 || tok.VocabSize() != 301 {
		t.Fatalf("BOS %d EOS %d PAD %d VocabSize %d, want 300 300 -1 301", tok.BOS(), tok.EOS(), tok.PAD(), tok.VocabSize())
	}
	if got, want := tok.EncodeWithBOS("<pad></s>"), []int{300, '<', 'p', 'a', 'd', '>', 300}; !slices.Equal(got, want) {
		t.Errorf("EncodeWithBOS = %v, want %v", got, want)
	}
	if _, err := tok.Decode([]int{299}); err == nil {
		t.Error("Decode of an id in a gap of the vocabulary succeeded")
	}
}

// referenceBPE is transformers' GPT2Tokenizer.bpe written plainly: find the
// lowest-ranked adjacent pair, merge all its occurrences left to right, repeat.
func referenceBPE(word []string, ranks map[[2]string]int) []string {
	word = slices.Clone(word)
	for len(word) > 1 {
		best, bestRank := [2]string{}, -1
		for i := 1; i < len(word); i++ {
			if r, ok := ranks[[2]string{word[i-1], word[i]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = [2]string{word[i-1], word[i]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		var next []string
		for i := 0; i < len(word); i++ {
			if i+1 < len(word) && word[i] == best[0] && word[i+1] == best[1] {
				next = append(next, best[0]+best[1])
				i++
			} else {
				next = append(next, word[i])
			}
		}
		word = next
	}
	return word
}

// TestBPEMatchesReference checks the heap-based merge loop against the plain one on
// random merge tables, including tables where a merge that uses a token outranks the
// merge that makes it, which trained tables never have.
func TestBPEMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for table := range 40 {
		toks := []string{"a", "b", "c", "d"}
		var merges [][2]string
		seen := make(map[[2]string]bool)
		for len(merges) < 30 {
			m := [2]string{toks[rng.IntN(len(toks))], toks[rng.IntN(len(toks))]}
			if seen[m] || len(m[0]+m[1]) > 6 {
				continue
			}
			seen[m] = true
			merges = append(merges, m)
			if !slices.Contains(toks, m[0]+m[1]) {
				toks = append(toks, m[0]+m[1])
			}
		}
		if table%2 == 1 {
			rng.Shuffle(len(merges), func(i, j int) { merges[i], merges[j] = merges[j], merges[i] })
		}
		ranks := make(map[[2]string]int)
		for i, m := range merges {
			ranks[m] = i
		}
		tok := mustNew(t, baseVocab(merges), merges)
		for range 50 {
			word := make([]string, 1+rng.IntN(40))
			for i := range word {
				word[i] = string(rune('a' + rng.IntN(4)))
			}
			text := strings.Join(word, "")
			got := tokenStrings(tok, tok.Encode(text))
			if want := referenceBPE(word, ranks); !slices.Equal(got, want) {
				t.Fatalf("table %d, %q: got %q, want %q (merges %q)", table, text, got, want, merges)
			}
		}
	}
}

func TestDecodeReplacesInvalidUTF8LikePython(t *testing.T) {
	tok := mustNew(t, baseVocab(nil), nil)
	// Expected values are what Python's bytes.decode("utf-8", "replace") returns: one
	// U+FFFD per maximal subpart of an ill-formed sequence.
	cases := []struct {
		raw  string
		want string
	}{
		{"\xe2\x82\xac", "€"},
		{"\xff", "\ufffd"},
		{"\xe2\x82", "\ufffd"},                 // truncated at the end
		{"\xe2\x82A", "\ufffdA"},               // truncated by an ASCII byte
		{"\xf0\x9f\x98", "\ufffd"},             // truncated 4-byte sequence
		{"\xe0\x80", "\ufffd\ufffd"},           // E0 needs A0-BF next (overlong)
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // a surrogate
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xc0\xaf", "\ufffd\ufffd"},
		{"\x80\x80", "\ufffd\ufffd"},
		{"a\xc3", "a\ufffd"},
		{"\xc3\xa9\xc3", "é\ufffd"},
	}
	for _, c := range cases {
		ids := make([]int, len(c.raw))
		for i := range len(c.raw) {
			ids[i] = 4 + int(c.raw[i])
		}
		got, err := tok.Decode(ids)
		if err != nil || got != c.want {
			t.Errorf("Decode(% x) = %q, %v; want %q", c.raw, got, err, c.want)
		}
	}
	for _, ids := range [][]int{{-1}, {tok.VocabSize()}} {
		if _, err := tok.Decode(ids); err == nil || !strings.Contains(err.Error(), "not in the vocab") {
			t.Errorf("Decode(%v): got error %v, want an unknown-id error", ids, err)
		}
	}
	// A token spelled outside the byte alphabet cannot be decoded, as in transformers.
	vocab := baseVocab(nil)
	vocab["\n"] = 999
	if _, err := mustNew(t, vocab, nil).Decode([]int{999}); err == nil || !strings.Contains(err.Error(), "byte alphabet") {
		t.Errorf("Decode of a non-byte-level token: got %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	good := baseVocab([][2]string{{"a", "b"}})
	with := func(edit func(v map[string]int)) map[string]int {
		v := make(map[string]int)
		for k, id := range good {
			v[k] = id
		}
		edit(v)
		return v
	}
	cases := []struct {
		name   string
		vocab  map[string]int
		merges [][2]string
		want   string
	}{
		{"no eos", with(func(v map[string]int) { delete(v, "</s>") }), nil, `no "</s>" token`},
		{"no byte", with(func(v map[string]int) { delete(v, "Ġ") }), nil, `no token "Ġ" for byte 0x20`},
		{"shared id", with(func(v map[string]int) { v["zz"] = 2 }), nil, `tokens "</s>" and "zz" share id 2`},
		{"negative id", with(func(v map[string]int) { v["zz"] = -5 }), nil, `"zz" has id -5`},
		{"huge id", with(func(v map[string]int) { v["zz"] = 1 << 30 }), nil, `"zz" has id 1073741824`},
		{"empty token", with(func(v map[string]int) { v[""] = 400 }), nil, "empty token"},
		{"merge result", good, [][2]string{{"a", "c"}}, `merge 0 ("a" "c"): merged token "ac" is not in vocab`},
		{"merge part", good, [][2]string{{"a", "b"}, {"ab", "q!"}}, `merge 1 ("ab" "q!"): token "q!" is not in vocab`},
		{"repeat", good, [][2]string{{"a", "b"}, {"a", "b"}}, `merge 1 ("a" "b") repeats merge 0`},
	}
	for _, c := range cases {
		_, err := New(c.vocab, c.merges)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tokenizer: ") {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestTrainTinyHandChecked(t *testing.T) {
	// Pieces: "aaab" once, " aaab" twice.
	//  1. (a,a) occurs 2+2*2 = 6 times                         -> "aa"
	//  2. (aa,a) and (a,b) both 3 times; left "a" < "aa"       -> "ab"
	//  3. (aa,ab) 3 times, (Ġ,aa) 2 times                      -> "aaab"
	//  4. (Ġ,aaab) 2 times                                     -> "Ġaaab"
	vocab, merges := TrainTiny("aaab aaab aaab", 1000)
	wantMerges := [][2]string{{"a", "a"}, {"a", "b"}, {"aa", "ab"}, {"Ġ", "aaab"}}
	if !slices.Equal(merges, wantMerges) {
		t.Fatalf("merges %q, want %q", merges, wantMerges)
	}
	for tok, id := range map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "Ā": 4, "Ġ": 36, "a": 4 + 'a', "aa": 260, "ab": 261, "aaab": 262, "Ġaaab": 263} {
		if vocab[tok] != id {
			t.Errorf("vocab[%q] = %d, want %d", tok, vocab[tok], id)
		}
	}
	if len(vocab) != 264 {
		t.Errorf("vocab has %d tokens, want 264", len(vocab))
	}
	tok := mustNew(t, vocab, merges)
	if got, want := tok.Encode("aaab aaab"), []int{262, 263}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}

	if _, merges := TrainTiny("aaab aaab aaab", 262); !slices.Equal(merges, wantMerges[:2]) {
		t.Errorf("vocabSize 262: merges %q, want %q", merges, wantMerges[:2])
	}
	if vocab, merges := TrainTiny("aaab", 10); len(vocab) != 260 || len(merges) != 0 {
		t.Errorf("vocabSize below the base: %d tokens, %d merges; want 260, 0", len(vocab), len(merges))
	}
}

func TestTrainTinyIsDeterministic(t *testing.T) {
	v1, m1 := TrainTiny(sampleCorpus, 450)
	v2, m2 := TrainTiny(sampleCorpus, 450)
	if !slices.Equal(m1, m2) || len(v1) != len(v2) {
		t.Fatal("two runs on the same corpus differ")
	}
	for k, id := range v1 {
		if v2[k] != id {
			t.Fatalf("token %q: ids %d and %d", k, id, v2[k])
		}
	}
	if len(v1) != 450 {
		t.Errorf("vocab has %d tokens, want 450", len(v1))
	}
	tok := mustNew(t, v1, m1)
	// Frequent words of the corpus become single tokens.
	for _, w := range []string{" the", " and"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("Encode(%q) = %q, want one token", w, tokenStrings(tok, ids))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	vocab, merges := TrainTiny(sampleCorpus, 1000)
	tok := mustNew(t, vocab, merges)
	for _, s := range testTexts(300) {
		got, err := tok.Decode(tok.Encode(s))
		if err != nil || got != s {
			t.Errorf("Decode(Encode(%q)) = %q, %v", s, got, err)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	vocab, merges := TrainTiny(sampleCorpus, 1000)
	texts := testTexts(200)
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = mustNew(t, vocab, merges).Encode(s)
	}
	tok := mustNew(t, vocab, merges)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range texts {
				i := (k + g*25) % len(texts)
				if got := tok.Encode(texts[i]); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("goroutine %d, %q: got %v, want %v", g, texts[i], got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// sampleCorpus is English prose with some code and numbers, for training small
// vocabularies in tests and benchmarks.
var sampleCorpus = strings.Repeat(`The cache keeps the keys and values of every token the model has seen. When the
budget is full, the policy chooses which entries to evict, and the model attends only
to what is left. We measure the loss of quality against the full cache; the budget
ranges from 10% to 50% of the context, and the results are averaged over 3 runs.
It's cheap to replay a trace, so we'll try many policies and they're compared fairly.
func evict(scores []float32, budget int) []int { return topK(scores, budget) }
`, 4)

// testTexts returns n deterministic strings mixing the kinds of text the pattern
// treats differently: letters of several scripts, numbers, punctuation, emoji
// (with skin tones and ZWJ sequences), contractions and whitespace runs.
func testTexts(n int) []string {
	pieces := []string{
		// ASCII words and contractions in several cases
		"hello", "World", "THE", "don't", "DON'T", "it's", "IT'S", "we'll", "you're", "they've",
		"I'm", "she'd", "'s", "'S", "'ll", "'LL", "o'clock", "rock'n'roll", "''", "'",
		// letters of other scripts, with combining marks
		"café", "naïve", "Ærøskøbing", "Straße", "αλφάβητο", "Ωμέγα", "привет", "мир",
		"مرحبا", "שלום", "नमस्ते", "हिन्दी", "สวัสดี", "ქართული", "Ελληνικά", "e\u0301",
		// CJK, kana, hangul
		"你好", "世界", "漢字テスト", "こんにちは", "カタカナ", "안녕하세요", "한국어",
		// emoji: plain, skin tones, ZWJ families, flags, keycaps, variation selectors
		"😀", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "1️⃣", "❤️", "✨",
		// numbers of several kinds
		"0", "42", "3.14159", "1,000,000", "2024-06-01", "٣٤٥", "١٢", "²", "½", "Ⅻ", "१२३",
		// punctuation and symbols
		"!", "!!!", "?!", "...", "—", "–", "«»", "“quoted”", "(x)", "[]{}", "@#$%^&*", "``",
		"->", "::", "\\", "/", "|", "~", "€", "£", "°C", "™", "∑∫√", "¿", "¡",
		// code-like text
		"fmt.Println(\"hi\")", "a_b", "x+=1;", "<div>", "</div>", "&amp;", "http://example.com/a?b=c",
		// control characters that are not whitespace for the pattern
		"\x00", "\x07", "\x1b[0m", "\x1c", "\x1f", "\x7f",
	}
	spaces := []string{
		" ", " ", " ", " ", "", "", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ",
		" \t ", "\t\t", "\u00a0", " \u00a0", "\u3000", "\u2009", "\u2028", "\v", "\f", "\n\n\n",
	}
	rng := rand.New(rand.NewPCG(7, 11))
	texts := make([]string, 0, n)
	for len(texts) < n {
		var b strings.Builder
		if rng.IntN(6) == 0 {
			b.WriteString(spaces[rng.IntN(len(spaces))])
		}
		for k := 1 + rng.IntN(10); k > 0; k-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			if k > 1 {
				b.WriteString(spaces[rng.IntN(len(spaces))])
			}
		}
		if rng.IntN(4) == 0 {
			b.WriteString(spaces[rng.IntN(len(spaces))])
		}
		texts = append(texts, b.String())
	}
	return texts
}

// TestDecodeKnown: ids beyond the tokenizer's vocabulary (a model's may be larger,
// as OPT's 50272 rows hold 50265 tokens) are left out of the text.
func TestDecodeKnown(t *testing.T) {
	tok, err := New(TrainTiny(sampleCorpus, 400))
	if err != nil {
		t.Fatal(err)
	}
	unknown := int32(tok.VocabSize())
	ids := []int32{unknown}
	for _, id := range tok.Encode("the cache") {
		ids = append(ids, int32(id))
	}
	got, err := tok.DecodeKnown(append(ids, unknown))
	if err != nil || got != "the cache" {
		t.Errorf("DecodeKnown = %q, %v; want \"the cache\"", got, err)
	}
}
