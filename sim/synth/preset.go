package synth

import (
	"fmt"
	"strings"
)

// Preset is the attention shape of one OPT model size.
type Preset struct {
	Name    string
	Layers  int
	Heads   int
	HeadDim int
}

// presets are the OPT family's shapes (decoder layers, attention heads, head dimension),
// smallest first.
var presets = []Preset{
	{"opt-125m", 12, 12, 64},
	{"opt-350m", 24, 16, 64},
	{"opt-1.3b", 24, 32, 64},
	{"opt-2.7b", 32, 32, 80},
	{"opt-6.7b", 32, 32, 128},
	{"opt-13b", 40, 40, 128},
	{"opt-30b", 48, 56, 128},
	{"opt-66b", 64, 72, 128},
}

// Presets returns the known shapes, smallest model first.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// LookupPreset returns the preset with the given name, such as "opt-13b".
func LookupPreset(name string) (Preset, error) {
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.Name
	}
	return Preset{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(names, ", "))
}
