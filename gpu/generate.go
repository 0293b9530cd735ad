package gpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// GenerateOptions configures greedy generation.
type GenerateOptions struct {
	// MaxNew is the most tokens to generate.
	MaxNew int
	// IgnoreEOS keeps generating after the model predicts the end-of-sequence token;
	// by default generation stops there.
	IgnoreEOS bool
	// Want and Observe see every layer of every forward pass: the prompt in one
	// batch, then each generated token; see Batch.
	Want    Want
	Observe func(v *LayerView) error
	// Progress, when set, is called after each forward pass with the number of
	// tokens it ran.
	Progress func(tokens int)
}

// Generation is the result of greedy generation.
type Generation struct {
	// Tokens are the generated tokens. Each was fed through the model, so the
	// observer saw its queries, keys and values. An end-of-sequence prediction that
	// stopped generation is not among them.
	Tokens []int32
	// EOS reports that generation stopped because the model predicted the
	// end-of-sequence token.
	EOS bool
	// Prefill and Decode are the time spent on the prompt and on generated tokens.
	Prefill, Decode time.Duration
}

// Generate decodes greedily from prompt, in a fresh sequence whose cache holds
// every token: it runs the prompt, then repeatedly appends the most likely next
// token (the lowest id among ties, as torch.argmax) until it has MaxNew tokens or
// the model predicts end-of-sequence. The last token is fed too, without computing
// its logits, so that all of prompt and generation went through the model.
func (e *Engine) Generate(ctx context.Context, prompt []int32, o GenerateOptions) (*Generation, error) {
	if len(prompt) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	if o.MaxNew < 0 {
		return nil, fmt.Errorf("generate: MaxNew %d is negative", o.MaxNew)
	}
	seq, err := e.NewSequence(len(prompt)+o.MaxNew, false)
	if err != nil {
		return nil, err
	}
	defer seq.Close()
	progress := func(n int) {
		if o.Progress != nil {
			o.Progress(n)
		}
	}
	logits := make([]float32, e.cfg.VocabSize)
	out := Outputs{Logits: logits, Want: o.Want, Observe: o.Observe}
	if o.MaxNew == 0 {
		out.Logits = nil
	}
	g := &Generation{}
	start := time.Now()
	if err := seq.Feed(prompt, out); err != nil {
		return nil, fmt.Errorf("generate: prompt: %w", err)
	}
	g.Prefill = time.Since(start)
	progress(len(prompt))
	start = time.Now()
	for len(g.Tokens) < o.MaxNew {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next, err := Argmax(logits)
		if err != nil {
			return nil, fmt.Errorf("generate: position %d: %w", seq.Len()-1, err)
		}
		if next == int32(e.cfg.EOSTokenID) && !o.IgnoreEOS {
			g.EOS = true
			break
		}
		g.Tokens = append(g.Tokens, next)
		if len(g.Tokens) == o.MaxNew {
			out.Logits = nil
		}
		if err := seq.Feed([]int32{next}, out); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		progress(1)
	}
	g.Decode = time.Since(start)
	return g, nil
}

// Argmax returns the index of the largest logit, the first among equals, as
// torch.argmax does. A NaN logit, or an infinite largest one, is an error: it means
// the forward pass broke down.
func Argmax(logits []float32) (int32, error) {
	best := 0
	for i, x := range logits {
		if x != x {
			return 0, fmt.Errorf("logit %d is NaN", i)
		}
		if x > logits[best] {
			best = i
		}
	}
	if math.IsInf(float64(logits[best]), 0) {
		return 0, fmt.Errorf("largest logit %d is %v", best, logits[best])
	}
	return int32(best), nil
}
