package validate_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies"
)

// A policy compiled to WASM and run behind the ABI evicts the same slots as its
// native build, so the generations are identical token for token.
func TestWASMMatchesNative(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WASM module")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h2o.wasm")
	if err := gobuild.WASM(ctx, "github.com/kvsim/kvsim/policies/h2o", path); err != nil {
		t.Fatal(err)
	}
	m, err := wasmhost.Load(ctx, path, wasmhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := tinyEngine(t)
	o := validate.Options{Budget: 4, MaxNew: gen, IgnoreEOS: true}
	native, err := validate.Decode(ctx, e, prompt, newBuiltin(t, "h2o"), o)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := validate.Decode(ctx, e, prompt, func() (policies.Policy, error) { return m.New(policies.NewParams(nil)) }, o)
	if err != nil {
		t.Fatal(err)
	}
	if native.Evictions == 0 {
		t.Fatal("nothing evicted: the comparison would be vacuous")
	}
	if !slices.Equal(native.Tokens, wasm.Tokens) || native.Evictions != wasm.Evictions || native.NLL != wasm.NLL {
		t.Errorf("wasm: %v (%d evictions, NLL %g); native: %v (%d, %g)",
			wasm.Tokens, wasm.Evictions, wasm.NLL, native.Tokens, native.Evictions, native.NLL)
	}
}
