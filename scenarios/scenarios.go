// Package scenarios embeds the scenarios that ship with kvsim, so that the binary runs
// its demo with no files beside it.
package scenarios

import "embed"

// FS holds every *.toml in this directory.
//
//go:embed *.toml
var FS embed.FS

// Demo is the scenario `kvsim replay` runs when given none.
const Demo = "demo.toml"
