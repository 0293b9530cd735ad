//go:build cgo && (linux || freebsd || darwin)

package plugin

import (
	"fmt"
	goplugin "plugin"

	"github.com/kvsim/kvsim/policies"
)

func open(path string) (policies.New, error) {
	p, err := goplugin.Open(path)
	if err != nil {
		return nil, explain(err)
	}
	sym, err := p.Lookup("New")
	if err != nil {
		return nil, fmt.Errorf("%w: the plugin's main package must define func New(*policies.Params) (policies.Policy, error)", err)
	}
	return lookupNew(sym)
}
