package press_test

import (
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// byPosition scores a token by its position (the oldest goes, as a window would) and,
// with readKeys, first sums every resident key: the least a scorer that reads keys
// pays.
type byPosition struct {
	t        *press.Tokens
	readKeys bool
	sink     float32
}

func (s *byPosition) Start(_ policies.Config, t *press.Tokens) error { s.t = t; return nil }
func (s *byPosition) Observe(*policies.Attention) error              { return nil }
func (s *byPosition) Score(h int, slots []int32, scores []float64) {
	if s.readKeys {
		sum := float32(0)
		for _, slot := range s.t.Resident(h) {
			for _, x := range s.t.Key(h, slot) {
				sum += x
			}
		}
		s.sink += sum
	}
	for i, slot := range slots {
		scores[i] = float64(s.t.Pos(h, slot))
	}
}

// BenchmarkKeyAccess times a decode step of the same press as it takes more of the
// keys: none, keys sent, keys stored, and every resident key read at each eviction.
// The differences are the policy's side of key access per (head·step).
func BenchmarkKeyAccess(b *testing.B) {
	for _, c := range []struct {
		name     string
		opt      press.Options
		readKeys bool
	}{
		{"none", press.Options{}, false},
		{"sent", press.Options{Keys: true}, false},
		{"stored", press.Options{StoreKeys: true}, false},
		{"read", press.Options{StoreKeys: true}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.opt.Decode, c.opt.Compact = press.Score, true
			presstest.BenchmarkDecode(b, func(*policies.Params) (policies.Policy, error) {
				return press.New("bench", &byPosition{readKeys: c.readKeys}, c.opt), nil
			}, nil)
		})
	}
}
