package validate

import (
	"fmt"

	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/tokenizer"
)

// Samples builds the samples validation decodes: each record's prompt from t, its
// document cut so that the prompt holds at most maxPrompt tokens, and its
// reference summary.
func Samples(records []dataset.Sample, t dataset.Template, tok *tokenizer.Tokenizer, maxPrompt int) ([]Sample, error) {
	out := make([]Sample, len(records))
	for i, r := range records {
		p, err := t.Build(tok, r.Document, maxPrompt)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", r.ID, err)
		}
		out[i] = Sample{Prompt: p.Tokens, Reference: r.Reference}
	}
	return out, nil
}
