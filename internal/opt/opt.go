// Package opt is the table of the published OPT model sizes' shapes (decoder layers,
// attention heads, head dimension). Synthetic traces (sim/synth) and synthetic
// checkpoints (internal/checkpoint) are both shaped by it; it imports nothing of kvsim.
package opt

import (
	"fmt"
	"strings"
)

// Shape is the attention shape of one OPT model size.
type Shape struct {
	Name    string
	Layers  int
	Heads   int
	HeadDim int
}

// shapes are the OPT family's, smallest first, from each model's config.json.
var shapes = []Shape{
	{"opt-125m", 12, 12, 64},
	{"opt-350m", 24, 16, 64},
	{"opt-1.3b", 24, 32, 64},
	{"opt-2.7b", 32, 32, 80},
	{"opt-6.7b", 32, 32, 128},
	{"opt-13b", 40, 40, 128},
	{"opt-30b", 48, 56, 128},
	{"opt-66b", 64, 72, 128},
}

// Shapes returns the known shapes, smallest model first.
func Shapes() []Shape { return append([]Shape(nil), shapes...) }

// Names returns the known sizes' names, smallest model first.
func Names() []string {
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = s.Name
	}
	return names
}

// Lookup returns the shape of the size with the given name, such as "opt-13b".
func Lookup(name string) (Shape, error) {
	for _, s := range shapes {
		if s.Name == name {
			return s, nil
		}
	}
	return Shape{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(Names(), ", "))
}
