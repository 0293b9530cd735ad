//go:build !cuda

package main

import (
	"context"
	"errors"
)

// runGPU stands in for the CUDA diagnostics in builds without the cuda tag.
func runGPU(ctx context.Context, e *env, args []string) error {
	return errors.New("gpu: this kvsim was built without CUDA support; rebuild with cgo and -tags cuda (see the README's GPU check)")
}
