// Package builtin is the registry of the policies that ship with kvsim, by the name a
// scenario uses after "builtin:".
package builtin

import (
	"slices"
	"sort"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/adakv"
	"github.com/kvsim/kvsim/policies/auv"
	"github.com/kvsim/kvsim/policies/duo"
	"github.com/kvsim/kvsim/policies/expectedattention"
	"github.com/kvsim/kvsim/policies/full"
	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/keydiff"
	"github.com/kvsim/kvsim/policies/knorm"
	"github.com/kvsim/kvsim/policies/nacl"
	"github.com/kvsim/kvsim/policies/oracle"
	"github.com/kvsim/kvsim/policies/pyramidkv"
	"github.com/kvsim/kvsim/policies/random"
	"github.com/kvsim/kvsim/policies/scissorhands"
	"github.com/kvsim/kvsim/policies/snapkv"
	"github.com/kvsim/kvsim/policies/tova"
	"github.com/kvsim/kvsim/policies/window"
)

var registry = map[string]policies.New{
	"full":   full.New,
	"window": window.New,
	"random": random.New,
	"h2o":    h2o.New,
	"oracle": oracle.New,
	"auv":    auv.New,
	"nacl":   nacl.New,
	"snapkv": snapkv.New,
	"tova":   tova.New,
	"knorm":  knorm.New,

	"keydiff":           keydiff.New,
	"expectedattention": expectedattention.New,

	"pyramidkv": pyramidkv.New,
	"adakv":     adakv.New,
	"duo":       duo.New,

	"scissorhands": scissorhands.New,
}

// Lookup returns the constructor of a builtin policy.
func Lookup(name string) (policies.New, bool) {
	n, ok := registry[name]
	return n, ok
}

// Names lists the builtin policies, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
