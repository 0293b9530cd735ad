package plugin

import (
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/window"
)

// TestLookupNew: New may be a function or a variable holding one; anything else is
// an error that names the type wanted.
func TestLookupNew(t *testing.T) {
	var named policies.New = window.New
	plain := func(p *policies.Params) (policies.Policy, error) { return window.New(p) }
	for _, sym := range []any{plain, &named, &plain} {
		if f, err := lookupNew(sym); err != nil || f == nil {
			t.Errorf("%T: %v", sym, err)
		}
	}
	var unset policies.New
	for sym, want := range map[any]string{
		new(int): "symbol New is a *int, want func(*policies.Params) (policies.Policy, error)",
		&unset:   "symbol New is a *policies.New, want func(*policies.Params) (policies.Policy, error)",
	} {
		if _, err := lookupNew(sym); err == nil || err.Error() != want {
			t.Errorf("%T: got %v, want %s", sym, err, want)
		}
	}
}

func TestExplainSaysHowToRebuild(t *testing.T) {
	err := explain(errorString(`plugin.Open("x.so"): plugin was built with a different version of package runtime`))
	if !strings.Contains(err.Error(), "; rebuild the plugin with this kvsim's Go (go") || !strings.HasSuffix(err.Error(), "go build -buildmode=plugin, or kvsim policy build -plugin PKG") {
		t.Errorf("got %v", err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
