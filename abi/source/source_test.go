package source_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/abi/source"
	"github.com/kvsim/kvsim/abi/wasmhost"
)

// TestBadSources: what Open refuses, and the error that says why.
func TestBadSources(t *testing.T) {
	sandbox := &wasmhost.Options{}
	for _, c := range []struct {
		source  string
		sandbox *wasmhost.Options
		want    string
	}{
		{"wasm:p.wasm", nil, `source "wasm:p.wasm": wasm policy: open d/p.wasm: no such file or directory`},
		{"ftp:x", nil, `source "ftp:x": unknown scheme "ftp" (want builtin, wasm or plugin)`},
		{"h2o", nil, `source "h2o": want builtin:NAME, wasm:PATH or plugin:PATH`},
		{"builtin:nope", nil, `source "builtin:nope": no builtin policy "nope" (have `},
		{"builtin:h2o", sandbox, `limits apply to wasm: policies only (a builtin policy runs natively, outside any sandbox)`},
	} {
		_, err := source.Open(context.Background(), c.source, "d", c.sandbox)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.source, err, c.want)
		}
	}
	if _, err := source.Open(context.Background(), "builtin:h2o", "d", nil); err != nil {
		t.Errorf("builtin:h2o: %v", err)
	}
}

// TestPluginSourceIsRelative: a plugin: path is anchored at the scenario's directory,
// like a wasm: path.
func TestPluginSourceIsRelative(t *testing.T) {
	_, err := source.Open(context.Background(), "plugin:p/h2o.so", "dir", nil)
	if err == nil || !strings.Contains(err.Error(), `source "plugin:p/h2o.so": plugin dir/p/h2o.so: `) {
		t.Errorf("got %v", err)
	}
}
