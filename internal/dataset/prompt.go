package dataset

import (
	"fmt"
	"strings"

	"github.com/kvsim/kvsim/internal/tokenizer"
)

// DocumentPlaceholder marks where a template takes the document.
const DocumentPlaceholder = "{document}"

// DefaultTemplate is HELM's summarization prompt for XSUM, as H2O and AUV evaluate
// OPT; see the package doc.
const DefaultTemplate = "###\nArticle: " + DocumentPlaceholder + "\n\nSummarize the above article in 1 sentence.\n"

// Prompt is one sample's prompt.
type Prompt struct {
	Text   string
	Tokens []int32 // with OPT's "</s>" first
	// Truncated reports that the document was cut to fit; DocumentBytes is how much
	// of it the prompt kept.
	Truncated     bool
	DocumentBytes int
}

// Template is a prompt template with one document placeholder.
type Template struct {
	text           string
	prefix, suffix string
}

// ParseTemplate checks that text has exactly one {document}.
func ParseTemplate(text string) (Template, error) {
	if n := strings.Count(text, DocumentPlaceholder); n != 1 {
		return Template{}, fmt.Errorf("template %q has %d %s placeholders, want 1", text, n, DocumentPlaceholder)
	}
	prefix, suffix, _ := strings.Cut(text, DocumentPlaceholder)
	return Template{text: text, prefix: prefix, suffix: suffix}, nil
}

// String is the template's text.
func (t Template) String() string { return t.text }

// Fill puts a document into the template.
func (t Template) Fill(document string) string { return t.prefix + document + t.suffix }

// Build fills the template with document and tokenizes it. If the prompt has more
// than maxTokens tokens (0: no limit), the document is cut at the end, at a
// character boundary, to the longest prefix whose prompt fits; the template is
// never cut. A template that does not fit even with an empty document is an error.
func (t Template) Build(tok *tokenizer.Tokenizer, document string, maxTokens int) (Prompt, error) {
	encode := func(doc string) []int { return tok.EncodeWithBOS(t.Fill(doc)) }
	ids := encode(document)
	kept := len(document)
	if maxTokens > 0 && len(ids) > maxTokens {
		empty := encode("")
		if len(empty) > maxTokens {
			return Prompt{}, fmt.Errorf("the template alone is %d tokens, more than the %d allowed", len(empty), maxTokens)
		}
		// Binary search over the character boundaries for the longest prefix that
		// fits: bounds[lo] always fits, bounds[hi] never does. Token counts almost
		// always grow with the prefix; where BPE makes a longer prefix shorter, the
		// search still ends on a prefix that fits.
		var bounds []int
		for i := range document {
			bounds = append(bounds, i)
		}
		bounds = append(bounds, len(document))
		lo, hi := 0, len(bounds)-1
		ids = empty
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if cand := encode(document[:bounds[mid]]); len(cand) <= maxTokens {
				lo, ids = mid, cand
			} else {
				hi = mid
			}
		}
		kept = bounds[lo]
	}
	p := Prompt{Text: t.Fill(document[:kept]), Tokens: make([]int32, len(ids)), Truncated: kept < len(document),
		DocumentBytes: kept}
	for i, id := range ids {
		p.Tokens[i] = int32(id)
	}
	return p, nil
}
