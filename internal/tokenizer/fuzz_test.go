package tokenizer

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var fuzzTokenizer = sync.OnceValue(func() *Tokenizer {
	vocab, merges := TrainTiny(sampleCorpus, 1000)
	tok, err := New(vocab, merges)
	if err != nil {
		panic(err)
	}
	return tok
})

// FuzzEncode checks that encoding never panics, keeps every input byte, round-trips
// valid UTF-8 through Decode and splits text as the regexp-based reference does.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "Hello world", "don't  stop\n\n", "a </s> b<pad><s>", "👨‍👩‍👧 \u0085\ufeff x",
		"\xff\xe2\x82 \xed\xa0\x80", "'s'S'll'LL", "   \t\n", "नमस्ते 123½", "it's 50% of 3.5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := fuzzTokenizer()
		ids := tok.Encode(s)
		var raw []byte
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d outside the vocab", s, id)
			}
			raw = append(raw, tok.raw[id]...)
		}
		if string(raw) != s {
			t.Fatalf("Encode(%q) spells %q", s, raw)
		}
		if !utf8.ValidString(s) {
			return
		}
		if got, err := tok.Decode(ids); err != nil || got != s {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", s, got, err)
		}
		if got, want := split(s), referenceSplit(s); !slices.Equal(got, want) {
			t.Fatalf("split(%q) = %q, want %q", s, got, want)
		}
	})
}

func benchmarkTexts() map[string]string {
	return map[string]string{
		"prose": strings.Repeat(sampleCorpus, 8),
		"mixed": strings.Join(testTexts(2000), " "),
	}
}

func benchmarkEncode(b *testing.B, tok *Tokenizer, cold bool) {
	for name, text := range benchmarkTexts() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if cold {
					tok.cache.mu.Lock()
					clear(tok.cache.m)
					tok.cache.mu.Unlock()
				}
				tok.Encode(text)
			}
		})
	}
}

// BenchmarkEncode encodes with a 1000-token vocabulary; MB/s is input bytes.
func BenchmarkEncode(b *testing.B) { benchmarkEncode(b, fuzzTokenizer(), false) }

// BenchmarkEncodeGPT2 encodes with GPT-2's 50257-token vocabulary, warm and with the
// piece cache emptied before every pass.
func BenchmarkEncodeGPT2(b *testing.B) {
	tok := loadGPT2(b, gpt3EncoderDir(b))
	b.Run("warm", func(b *testing.B) { benchmarkEncode(b, tok, false) })
	b.Run("cold", func(b *testing.B) { benchmarkEncode(b, tok, true) })
}

// BenchmarkDecode decodes with GPT-2's vocabulary; MB/s is output bytes.
func BenchmarkDecode(b *testing.B) {
	tok := loadGPT2(b, gpt3EncoderDir(b))
	for name, text := range benchmarkTexts() {
		ids := tok.Encode(text)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Decode(ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
