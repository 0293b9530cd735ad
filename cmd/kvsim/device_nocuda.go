//go:build !cuda

package main

import (
	"errors"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// openBackend opens the OPT engine's backend named by a -device flag over m, which
// must stay open while the backend runs. This build has only the CPU backend.
func openBackend(device string, m *checkpoint.Model, threads int) (gpu.Backend, error) {
	kind, _, err := parseDevice(device)
	if err != nil {
		return nil, err
	}
	if kind == "cuda" {
		return nil, errors.New("-device cuda: this kvsim was built without CUDA support; rebuild with cgo and -tags cuda (see the README's GPU check)")
	}
	return cpu.New(m, cpu.Options{Threads: threads})
}
