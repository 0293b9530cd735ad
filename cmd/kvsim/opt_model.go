package main

import (
	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/tokenizer"
)

// optModel is an OPT checkpoint directory opened for decoding: its weights and
// tokenizer, and, once started, the engine on a backend. kvsim capture, a scenario's
// [capture] table and validate all assemble it here.
type optModel struct {
	model   *checkpoint.Model
	tok     *tokenizer.Tokenizer
	backend gpu.Backend
	engine  *gpu.Engine
}

// openModel loads the checkpoint and the tokenizer of dir.
func openModel(dir string) (*optModel, error) {
	model, err := checkpoint.Load(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		model.Close()
		return nil, err
	}
	return &optModel{model: model, tok: tok}, nil
}

// start opens the backend a -device flag names and the engine on it.
func (m *optModel) start(device string, threads int) error {
	backend, err := openBackend(device, m.model, threads)
	if err != nil {
		return err
	}
	m.backend, m.engine = backend, gpu.New(backend)
	return nil
}

// Close releases the backend, then the weights it reads.
func (m *optModel) Close() {
	if m.backend != nil {
		m.backend.Close()
	}
	m.model.Close()
}
