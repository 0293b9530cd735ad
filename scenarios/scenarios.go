// Package scenarios embeds the scenarios that ship with kvsim, so that the binary runs
// its demo with no files beside it.
package scenarios

import (
	"embed"
	"io/fs"
	"strings"
)

// FS holds every *.toml in this directory.
//
//go:embed *.toml
var FS embed.FS

// Demo is the scenario `kvsim replay` and `kvsim validate` run when given none: the
// embedded trained OPT's attention, captured on the fly.
const Demo = "opt-kjv-demo.toml"

// Names lists the embedded scenarios by name: their file names less ".toml".
func Names() []string {
	files, _ := fs.Glob(FS, "*.toml") // the pattern is valid
	for i, f := range files {
		files[i] = strings.TrimSuffix(f, ".toml")
	}
	return files
}

// Has reports whether name is an embedded scenario's name.
func Has(name string) bool {
	_, err := fs.Stat(FS, name+".toml")
	return err == nil && !strings.ContainsAny(name, "/\\")
}
