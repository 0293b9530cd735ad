// Package host is the host's half of the eviction-policy protocol (package policies),
// written once: budgets and what they bound (Budget, Accounting, Bound: per head or
// pooled), how many victims a head or a pool owes, the checks on the victims a policy
// returns (against policies.SlotTable, the one slot table), a model pool's division
// among layers (Division), the compensation merge, the per-(sample, layer) seed, peak
// accounting's budget search, and the guard around every policy call. Replay (package
// sim) and in-loop decoding (gpu and gpu/validate) both drive policies through it, so
// that a policy meets the same host in both.
//
// policies/policytest is deliberately not built on it: it is the independent
// reference the host is checked against.
package host

import (
	"errors"
	"fmt"
	"io"

	"github.com/kvsim/kvsim/policies"
)

// CheckLayout rejects a layout no host can serve; clairvoyant tells whether this host
// can fill Eviction.Future.
func CheckLayout(layout policies.Layout, clairvoyant bool) error {
	if layout.Slack < 0 {
		return fmt.Errorf("negative slack %d", layout.Slack)
	}
	if layout.Pool < policies.PoolHead || layout.Pool > policies.PoolModel {
		return fmt.Errorf("unknown budget pool %v", layout.Pool)
	}
	if layout.Clairvoyant && !clairvoyant {
		return ErrClairvoyant
	}
	return nil
}

// ErrClairvoyant refuses a clairvoyant layout where the future is unknown: only
// replay, which holds the whole trace, can fill Eviction.Future.
var ErrClairvoyant = errors.New("clairvoyant policies are not allowed here")

// Seed derives the seed of one (sample, layer) from a run's seed, so that any thread
// count, and replay and in-loop decoding alike, give a randomized policy the same
// choices. It is a splitmix64-style finalizer over the three.
func Seed(base uint64, sample, layer int) uint64 {
	x := base ^ uint64(sample)*0x9e3779b97f4a7c15 ^ uint64(layer)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return x ^ x>>29
}

// Call runs one policy call, turning a panic into an error so that a faulty policy
// fails its own cell rather than the host.
func Call(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

// Close releases p when it holds resources (a WASM instance does).
func Close(p policies.Policy) {
	if c, ok := p.(io.Closer); ok {
		c.Close()
	}
}

// Clairvoyant reports whether newPolicy's policies need the future, by starting one
// on a short sequence of the given shape (Layers, Heads, HeadDim: the model's, so that
// a policy whose parameters name layers or heads accepts the probe). Such a policy
// can be replayed but not decoded in the loop.
func Clairvoyant(newPolicy func() (policies.Policy, error), shape policies.Config) (bool, error) {
	p, err := newPolicy()
	if err != nil {
		return false, err
	}
	defer Close(p)
	cfg := policies.Config{Layers: shape.Layers, Heads: shape.Heads, HeadDim: shape.HeadDim, PromptLen: 16, MaxLen: 32, Budget: 8}
	var layout policies.Layout
	if err := Call(func() (err error) { layout, err = p.Init(cfg); return err }); err != nil {
		return false, fmt.Errorf("init: %w", err)
	}
	return layout.Clairvoyant, nil
}
