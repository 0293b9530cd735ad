package dataset

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kvsim/kvsim/internal/tokenizer"
)

// tinyTokenizer is a byte-level BPE trained on a few sentences.
func tinyTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	corpus := strings.Repeat("The council said the new bridge would open in the spring, after two years of work.\n"+
		"Residents had complained about the traffic on the old road for a long time.\n", 3)
	tok, err := tokenizer.New(tokenizer.TrainTiny(corpus, 400))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

func TestTemplate(t *testing.T) {
	tok := tinyTokenizer(t)
	tpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	doc := "The council said the new bridge would open in the spring. Résidents — ünïcode 😀 and more words follow here."
	full, err := tpl.Build(tok, doc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if full.Truncated || full.Text != "###\nArticle: "+doc+"\n\nSummarize the above article in 1 sentence.\n" ||
		full.Tokens[0] != 2 || len(full.Tokens) != len(tok.EncodeWithBOS(full.Text)) {
		t.Fatalf("untruncated prompt %q with %d tokens", full.Text, len(full.Tokens))
	}
	empty := len(tok.EncodeWithBOS(tpl.Fill("")))
	for limit := empty; limit < len(full.Tokens); limit += 3 {
		p, err := tpl.Build(tok, doc, limit)
		if err != nil {
			t.Fatal(err)
		}
		kept := doc[:p.DocumentBytes]
		if !p.Truncated || p.Text != tpl.Fill(kept) || !utf8.ValidString(kept) {
			t.Fatalf("limit %d: prompt %q", limit, p.Text)
		}
		if len(p.Tokens) > limit || !slices.Equal(p.Tokens, toInt32(tok.EncodeWithBOS(p.Text))) {
			t.Errorf("limit %d: %d tokens %v", limit, len(p.Tokens), p.Tokens)
		}
		// The longest prefix: one more character does not fit.
		_, size := utf8.DecodeRuneInString(doc[p.DocumentBytes:])
		if longer := tok.EncodeWithBOS(tpl.Fill(doc[:p.DocumentBytes+size])); len(longer) <= limit {
			t.Errorf("limit %d: kept %d bytes, but %d fit", limit, p.DocumentBytes, p.DocumentBytes+size)
		}
	}
	if _, err := tpl.Build(tok, doc, empty-1); err == nil || !strings.Contains(err.Error(), "template alone") {
		t.Errorf("a limit below the template: %v", err)
	}
	for _, bad := range []string{"no placeholder", "{document} twice {document}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}
