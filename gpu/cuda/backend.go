//go:build cuda

package cuda

import (
	"errors"
	"fmt"

	"gorgonia.org/cu"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// Options configures the CUDA backend.
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
}

// Backend runs an OPT model on an NVIDIA GPU. It implements gpu.Backend.
//
// Each Forward costs one upload (the batch's tokens, positions and slots, and the
// victim lists of the evictions queued since the last call), one copy to the host per
// observed layer, and one wait for the results. In decode, attention probabilities
// travel on a second stream while later layers compute.
//
// # Notes
//
//   - Like every gpu.Backend, it serves one Forward at a time.
//   - Close closes the device too; the checkpoint.Model it was built from may be
//     closed as soon as New returns, since the weights live on the device.
type Backend struct {
	d      *Device
	m      *Model
	cfg    checkpoint.Config
	events []cu.Event // per layer: its attention probabilities are ready
	landed []cu.Event // per layer: in decode, its copies are on the host

	ws     workspace
	wsMem  Ptr
	wsSize int
	host   *Pinned
	ints   []byte // staging of the upload
}

var _ gpu.Backend = (*Backend)(nil)

// New opens the device and uploads the checkpoint's weights in fp16.
func New(ckpt *checkpoint.Model, o Options) (*Backend, error) {
	d, err := Open(o.Device)
	if err != nil {
		return nil, err
	}
	m, err := Upload(d, ckpt)
	if err != nil {
		d.Close()
		return nil, err
	}
	return newBackend(m)
}

// NewRandom opens the device and fills a model of config c with random weights on
// it (see RandomModel), for timing shapes without a checkpoint.
func NewRandom(c checkpoint.Config, o Options, seed uint64) (*Backend, error) {
	d, err := Open(o.Device)
	if err != nil {
		return nil, err
	}
	m, err := RandomModel(d, c, seed)
	if err != nil {
		d.Close()
		return nil, err
	}
	return newBackend(m)
}

func newBackend(m *Model) (*Backend, error) {
	b := &Backend{d: m.d, m: m, cfg: m.Config}
	unbind := b.d.bind()
	defer unbind()
	for range m.Config.NumHiddenLayers {
		for _, events := range []*[]cu.Event{&b.events, &b.landed} {
			e, err := cu.MakeEvent(cu.DisableTiming)
			if err != nil {
				unbind()
				b.Close()
				return nil, fmt.Errorf("cuda: creating an event: %w", err)
			}
			*events = append(*events, e)
		}
	}
	return b, nil
}

// Name is "cuda".
func (b *Backend) Name() string { return "cuda" }

// Config is the model's configuration.
func (b *Backend) Config() checkpoint.Config { return b.cfg }

// Device is the device the backend runs on, for its counters and timers.
func (b *Backend) Device() *Device { return b.d }

// WeightBytes is the size of the weights on the device.
func (b *Backend) WeightBytes() int64 { return b.m.WeightBytes }

// Close releases the workspace, the weights and the device.
func (b *Backend) Close() error {
	if b.d == nil {
		return nil
	}
	errs := []error{b.d.Free(b.wsMem), b.m.Free()}
	if b.host != nil {
		errs = append(errs, b.host.Free())
	}
	unbind := b.d.bind()
	for _, events := range [][]cu.Event{b.events, b.landed} {
		for i := range events {
			cu.DestroyEvent(&events[i])
		}
	}
	unbind()
	errs = append(errs, b.d.Close())
	b.d, b.events, b.landed, b.host = nil, nil, nil, nil
	return errors.Join(errs...)
}
