package kvtrace

import (
	"fmt"
	"slices"

	"github.com/kvsim/kvsim/internal/half"
)

// Format and Version identify kvtrace files in their metadata.
const (
	Format  = "kvtrace"
	Version = 1
)

// Kind names one of a layer's per-head tensors.
type Kind byte

const (
	Q Kind = 'q' // queries, already scaled so that q·k is the attention logit
	K Kind = 'k' // keys
	V Kind = 'v' // values (optional)
)

// Sources of a trace. Synthetic traces are never OPT measurements, and every output
// that shows results from them says so.
const (
	SourceGPU       = "gpu"
	SourceCPU       = "cpu"
	SourceSynthetic = "synthetic"
)

// Meta is a trace's metadata: the safetensors __metadata__ block, typed.
type Meta struct {
	Model     string // e.g. "facebook/opt-13b", or "synthetic/opt-13b"
	Layers    int
	Heads     int
	HeadDim   int
	PromptLen int // P
	GenLen    int // generated tokens; the trace holds P+GenLen tokens
	Source    string
	SampleID  string
	HasV      bool // derived from the tensors present, not stored as a key

	// Optional text.
	Prompt, Reference, Generated string

	// Extra holds metadata keys this version does not define. They are read and
	// written unchanged, so that producers can record more (a prompt template, a
	// capture option) without breaking older readers.
	Extra map[string]string
}

// Tokens is the number of token positions in the trace.
func (m Meta) Tokens() int { return m.PromptLen + m.GenLen }

// Metadata keys, in the order a header lists them.
const (
	keyFormat    = "format"
	keyVersion   = "version"
	keyModel     = "model"
	keyLayers    = "layers"
	keyHeads     = "heads"
	keyHeadDim   = "head_dim"
	keyPromptLen = "prompt_len"
	keyGenLen    = "gen_len"
	keySource    = "source"
	keySampleID  = "sample_id"
	keyPrompt    = "prompt"
	keyReference = "reference"
	keyGenerated = "generated"
)

// knownKeys are the keys kvtrace v1 defines; any others go to Meta.Extra.
var knownKeys = []string{keyFormat, keyVersion, keyModel, keyLayers, keyHeads, keyHeadDim, keyPromptLen,
	keyGenLen, keySource, keySampleID, keyPrompt, keyReference, keyGenerated}

// String returns the kind as it appears in tensor names: "q", "k" or "v".
func (k Kind) String() string {
	switch k {
	case Q, K, V:
		return string(rune(k))
	}
	return fmt.Sprintf("Kind(%#x)", byte(k))
}

// Validate checks that m describes a trace kvtrace can store: positive dimensions,
// at least one prompt token, a known source, and tensors whose sizes fit in memory.
func (m Meta) Validate() error {
	dims := []struct {
		key      string
		value    int
		smallest int
	}{
		{keyLayers, m.Layers, 1},
		{keyHeads, m.Heads, 1},
		{keyHeadDim, m.HeadDim, 1},
		{keyPromptLen, m.PromptLen, 1},
		{keyGenLen, m.GenLen, 0},
	}
	for _, d := range dims {
		if d.value < d.smallest {
			return fmt.Errorf("metadata %s: %d, want at least %d", d.key, d.value, d.smallest)
		}
	}
	switch m.Source {
	case SourceGPU, SourceCPU, SourceSynthetic:
	default:
		return fmt.Errorf("metadata %s: %q, want %s, %s or %s", keySource, m.Source,
			SourceGPU, SourceCPU, SourceSynthetic)
	}
	for key := range m.Extra {
		if slices.Contains(knownKeys, key) {
			return fmt.Errorf("metadata: extra key %q is a kvtrace key; set the Meta field instead", key)
		}
	}
	// The largest dtype with V present bounds every size computed from these dimensions.
	if _, ok := dataSize(m, half.F32.Size(), 3); !ok {
		return fmt.Errorf("metadata: %d layers of %d heads × (%d+%d) tokens × %d head_dim are too large to address",
			m.Layers, m.Heads, m.PromptLen, m.GenLen, m.HeadDim)
	}
	return nil
}
