//go:build !cgo || !(linux || freebsd || darwin)

package plugin

import (
	"fmt"
	"runtime"

	"github.com/kvsim/kvsim/policies"
)

func open(string) (policies.New, error) {
	return nil, fmt.Errorf("this kvsim was built without plugin support: Go plugins need kvsim built with cgo (CGO_ENABLED=1) on linux, freebsd or darwin, and this is a %s/%s build without it; rebuild kvsim so, or build the policy to WASM instead (kvsim policy build PKG)",
		runtime.GOOS, runtime.GOARCH)
}
