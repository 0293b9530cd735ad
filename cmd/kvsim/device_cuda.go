//go:build cuda

package main

import (
	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/cuda"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// openBackend opens the OPT engine's backend named by a -device flag ("cpu",
// "cuda" or "cuda:N" for device ordinal N) over m, which must stay open while the
// CPU backend runs. threads applies to the CPU backend.
func openBackend(device string, m *checkpoint.Model, threads int) (gpu.Backend, error) {
	kind, ordinal, err := parseDevice(device)
	if err != nil {
		return nil, err
	}
	if kind == "cuda" {
		return cuda.New(m, cuda.Options{Device: ordinal})
	}
	return cpu.New(m, cpu.Options{Threads: threads})
}
