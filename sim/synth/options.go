package synth

import (
	"errors"
	"fmt"

	"github.com/kvsim/kvsim/internal/opt"
)

// Options selects a synthetic trace: a synthetic model (Preset's shape, Seed) and one
// input sample of it.
type Options struct {
	// Preset names the OPT shape, such as "opt-13b".
	Preset string
	// Layers, Heads and HeadDim, when > 0, shrink the preset's shape (for tests and quick
	// runs). Layer l and head h of a shrunk trace are layer l and head h of the full one
	// as long as HeadDim is kept.
	Layers, Heads, HeadDim int
	// PromptLen and GenLen are the prompt and generated lengths; the trace holds
	// PromptLen+GenLen tokens.
	PromptLen, GenLen int
	// Sample indexes the input: samples of one synthetic model share its heads' behaviour
	// and differ in tokens, noise and which tokens matter.
	Sample int
	// Seed selects the synthetic model. It also seeds the samples, so two seeds share
	// nothing.
	Seed uint64
	// WithV adds value tensors.
	WithV bool
	// Positions is the synthetic model's context length, up to MaxPositions; 0 means
	// OPT's MaxTokens. PromptLen+GenLen must fit in it. Contexts longer than OPT's are
	// for synthetic studies only (OPT's learned positions stop at 2048); the slow
	// recency term, which spans the whole context, is the only behaviour it changes.
	Positions int
}

// Limits on Options.
const (
	// MinHeadDim leaves room for the generator's 29 structured channels plus content.
	MinHeadDim = 32
	// MinPromptLen leaves room for the four sink tokens and some content.
	MinPromptLen = 8
	// MaxTokens is OPT's context length (its learned positions stop there).
	MaxTokens = 2048
	// MaxPositions bounds Positions.
	MaxPositions = 32768
	// MaxLayerBytes bounds one layer's q, k and v in float32 (heads × tokens ×
	// head_dim × 4 bytes each), what generating a layer holds at once; a replay
	// worker holds about twice that (README, "Long contexts"). OPT-13B's 40 heads fit
	// at 32768 tokens with V (1.9 GiB).
	MaxLayerBytes = 2 << 30
)

// context is the synthetic model's context length.
func (o Options) context() int {
	if o.Positions == 0 {
		return MaxTokens
	}
	return o.Positions
}

// Validate reports every problem with the options, each naming its field.
func (o Options) Validate() error {
	_, err := o.shape()
	return err
}

// shape is the preset with the overrides applied, after checking all options.
func (o Options) shape() (opt.Shape, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("synth options: "+format, args...))
	}
	p, err := opt.Lookup(o.Preset)
	if err != nil {
		bad("Preset: %w", err)
	}
	override := func(field string, value int, preset *int) {
		switch {
		case value < 0:
			bad("%s = %d: must be positive, or 0 to keep the preset's", field, value)
		case value > 0 && err == nil && value > *preset:
			bad("%s = %d: exceeds %s's %d (overrides can only shrink)", field, value, p.Name, *preset)
		case value > 0:
			*preset = value
		}
	}
	override("Layers", o.Layers, &p.Layers)
	override("Heads", o.Heads, &p.Heads)
	override("HeadDim", o.HeadDim, &p.HeadDim)
	if err == nil && p.HeadDim < MinHeadDim {
		bad("HeadDim = %d: must be at least %d", p.HeadDim, MinHeadDim)
	}
	if o.PromptLen < MinPromptLen {
		bad("PromptLen = %d: must be at least %d", o.PromptLen, MinPromptLen)
	}
	if o.GenLen < 0 {
		bad("GenLen = %d: must not be negative", o.GenLen)
	}
	if o.Positions < 0 || o.Positions > MaxPositions {
		bad("Positions = %d: want 0 (OPT's %d) up to %d", o.Positions, MaxTokens, MaxPositions)
	}
	ctx := o.context()
	tooLong := o.PromptLen > ctx || o.GenLen > ctx || o.PromptLen+o.GenLen > ctx
	switch {
	case tooLong && o.Positions == 0:
		bad("PromptLen+GenLen = %d: exceeds OPT's context of %d tokens (set Positions, up to %d, for a longer synthetic context)",
			o.PromptLen+o.GenLen, MaxTokens, MaxPositions)
	case tooLong:
		bad("PromptLen+GenLen = %d: exceeds Positions = %d", o.PromptLen+o.GenLen, ctx)
	}
	if err == nil && !tooLong {
		tensors := 2
		if o.WithV {
			tensors = 3
		}
		if b := tensors * p.Heads * (o.PromptLen + o.GenLen) * p.HeadDim * 4; b > MaxLayerBytes {
			bad("one layer of %d heads × %d tokens × %d head_dim takes %.1f GiB in float32, over the %d GiB bound (shrink Heads or the lengths)",
				p.Heads, o.PromptLen+o.GenLen, p.HeadDim, float64(b)/(1<<30), MaxLayerBytes>>30)
		}
	}
	if o.Sample < 0 {
		bad("Sample = %d: must not be negative", o.Sample)
	}
	return p, errors.Join(errs...)
}
