//go:build !cgo || !(linux || freebsd || darwin)

package plugin

import (
	"runtime"
	"testing"
)

// TestOpenWithoutPluginSupport: a kvsim without cgo says so, and what to do.
func TestOpenWithoutPluginSupport(t *testing.T) {
	_, err := Open("p.so")
	want := "plugin p.so: this kvsim was built without plugin support: Go plugins need kvsim built with cgo (CGO_ENABLED=1) on linux, freebsd or darwin, and this is a " +
		runtime.GOOS + "/" + runtime.GOARCH + " build without it; rebuild kvsim so, or build the policy to WASM instead (kvsim policy build PKG)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
