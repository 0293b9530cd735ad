//go:build cuda

package cuda

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// BenchOptions describes a timing run of a model on the device.
type BenchOptions struct {
	Prompt, Gen int    // prompt tokens (one prefill pass) and greedy decode steps
	Seed        uint64 // the random prompt
	// Attention copies every layer's attention probabilities to the host at every
	// decode step, as policy-in-the-loop decoding does.
	Attention bool
	// Bandwidth is the device's copy bandwidth in bytes/s (Device.CopyBandwidth); the
	// decode floor is the bytes a step must read divided by it.
	Bandwidth float64
}

// BenchResult is what Bench measured. Times are host wall-clock, from the request to
// the logits on the host.
type BenchResult struct {
	Prefill         time.Duration
	DecodeMedian    time.Duration // per token, over the decode steps after the first
	DecodeMean      time.Duration
	DecodeFloor     time.Duration // bytes read per decode token ÷ bandwidth, at the mean context
	BytesPerToken   int64         // weights plus the mean KV bytes read per decode token
	CacheBytes      int64
	PerToken        Counters // driver calls per decode token, after the first
	GeneratedTokens []int32
}

// Bench runs one prefill and o.Gen greedy decode steps on a random prompt through
// the engine (gpu.Sequence, as capture and validate drive it), with a cache just
// large enough, and times them.
func Bench(b *Backend, o BenchOptions) (BenchResult, error) {
	c := b.cfg
	if o.Prompt < 1 || o.Gen < 2 || o.Prompt+o.Gen > c.MaxPositionEmbeddings {
		return BenchResult{}, fmt.Errorf("cuda: bench of %d+%d tokens (need a prompt, 2 or more decode steps, and at most %d in all)",
			o.Prompt, o.Gen, c.MaxPositionEmbeddings)
	}
	seq, err := gpu.New(b).NewSequence(o.Prompt+o.Gen, false)
	if err != nil {
		return BenchResult{}, err
	}
	defer seq.Close()
	res := BenchResult{CacheBytes: seq.KV().Bytes()}

	rng := rand.New(rand.NewPCG(o.Seed, 0))
	prompt := make([]int32, o.Prompt)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(c.VocabSize))
	}
	logits := make([]float32, c.VocabSize)
	out := gpu.Outputs{Logits: logits}
	start := time.Now()
	if err := seq.Feed(prompt, out); err != nil {
		return res, fmt.Errorf("cuda: prefill: %w", err)
	}
	res.Prefill = time.Since(start)
	if o.Attention { // the policy's view of every layer, received and dropped
		out.Want = gpu.Want{Probs: true}
		out.Observe = func(*gpu.LayerView) error { return nil }
	}
	var times []time.Duration
	var total time.Duration
	var before Counters
	next := make([]int32, 1)
	for i := range o.Gen {
		next[0] = argmax(logits)
		res.GeneratedTokens = append(res.GeneratedTokens, next[0])
		if i == 1 {
			before = b.d.Counters
		}
		start := time.Now()
		if err := seq.Feed(next, out); err != nil {
			return res, fmt.Errorf("cuda: decode step %d: %w", i, err)
		}
		if i >= 1 { // the first step grows the workspace
			elapsed := time.Since(start)
			times = append(times, elapsed)
			total += elapsed
		}
	}
	steps := int64(len(times))
	after := b.d.Counters
	res.PerToken = Counters{
		Launches:  (after.Launches - before.Launches) / steps,
		Uploads:   (after.Uploads - before.Uploads) / steps,
		Downloads: (after.Downloads - before.Downloads) / steps,
		Syncs:     (after.Syncs - before.Syncs) / steps,
	}
	res.DecodeMedian = medianDuration(times)
	res.DecodeMean = total / time.Duration(steps)
	res.BytesPerToken = b.m.DecodeBytes(o.Prompt + (o.Gen+1)/2)
	if o.Bandwidth > 0 {
		res.DecodeFloor = time.Duration(float64(res.BytesPerToken) / o.Bandwidth * float64(time.Second))
	}
	return res, nil
}

// DecodeBytes is the fewest bytes a decode step with context tokens in the cache
// must read: every weight but the position table (one row of which is read), and
// the keys and values of the context in every layer and head.
func (m *Model) DecodeBytes(context int) int64 {
	c := m.Config
	positions := int64(c.MaxPositionEmbeddings+checkpoint.PositionOffset-1) * int64(c.HiddenSize) * 2
	kv := int64(c.NumHiddenLayers) * int64(context) * int64(c.HiddenSize) * 2 * 2
	return m.WeightBytes - positions + kv
}
