package cuda

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/policies"
)

// CompareOptions describes a comparison of two backends running the same model.
type CompareOptions struct {
	Prompt []int32
	// Gen decode steps follow the prompt, teacher-forced with the reference's greedy
	// tokens so that both backends see the same inputs throughout.
	Gen int
	// Budget, when positive and below the prompt, adds a run with eviction: after the
	// prompt each (layer, head) keeps Budget tokens, the victims being the prompt
	// tokens the reference's last prompt row attends least, folded into a
	// compensation slot with that attention as weight; then Gen decode steps.
	Budget int
	// KeepLogits keeps both backends' logits of the full-cache run in the result.
	KeepLogits bool
}

// CompareResult holds the largest differences between a test backend and the
// reference over every step, layer, head and row.
type CompareResult struct {
	Steps int // forward passes compared, both runs together
	// LogitsRelErr is max over steps of ‖test−ref‖₂/‖ref‖₂ of the next-token logits.
	LogitsRelErr float64
	// QKVRelErr is max over steps and layers of ‖test−ref‖₂/‖ref‖₂ of q, k and v.
	QKVRelErr float64
	// ProbsMaxAbsErr is the largest difference of an attention probability,
	// compensation slots included.
	ProbsMaxAbsErr float64
	// RefTokens and TestTokens are each backend's greedy choice after the prompt and
	// after each decode step of the full-cache run; TokensAgree counts the leading
	// steps where they are equal.
	RefTokens, TestTokens []int32
	TokensAgree           int
	// Inputs are the tokens fed after the prompt: RefTokens but the last.
	Inputs []int32
	// RefLogits and TestLogits are the full-cache run's logits, [steps][vocab], when
	// CompareOptions.KeepLogits is set.
	RefLogits, TestLogits [][]float32
	// EvictLogitsRelErr is LogitsRelErr over the run with eviction alone.
	EvictLogitsRelErr float64
}

// CompareBackends runs o's prompt and teacher-forced decode steps through ref and
// test, observing every layer's queries, keys, values and attention, and reports
// how far test is from ref. Results from bit-identical backends are all zero.
func CompareBackends(ref, test gpu.Backend, o CompareOptions) (*CompareResult, error) {
	if len(o.Prompt) == 0 || o.Gen < 0 {
		return nil, fmt.Errorf("compare: %d prompt tokens and %d decode steps", len(o.Prompt), o.Gen)
	}
	rc, tc := ref.Config(), test.Config()
	rc.NameOrPath, tc.NameOrPath, rc.TorchDType, tc.TorchDType = "", "", "", "" // informational only
	if rc != tc {
		return nil, errors.New("compare: the backends run models of different shapes")
	}
	r := &CompareResult{}
	c := &comparison{result: r, vocab: rc.VocabSize, keepLogits: o.KeepLogits}
	if err := c.run(ref, test, o.Prompt, o.Gen, len(o.Prompt)+o.Gen, 0, &r.LogitsRelErr); err != nil {
		return nil, err
	}
	r.Inputs = c.tokens[:o.Gen]
	for r.TokensAgree < len(r.RefTokens) && r.RefTokens[r.TokensAgree] == r.TestTokens[r.TokensAgree] {
		r.TokensAgree++
	}
	if o.Budget > 0 && o.Budget < len(o.Prompt) { // decodes the full-cache run's tokens
		if err := c.run(ref, test, o.Prompt, o.Gen, len(o.Prompt)+o.Gen, o.Budget, &r.EvictLogitsRelErr); err != nil {
			return nil, fmt.Errorf("compare with eviction: %w", err)
		}
	}
	return r, nil
}

// ClearDisagreements counts the steps where the two backends' greedy tokens differ
// although the reference's logit for its own token beats its logit for the test's by
// more than ten times the logits' error (LogitsRelErr·max|logit|): disagreements
// that are not near-ties. It needs CompareOptions.KeepLogits.
func (r *CompareResult) ClearDisagreements() int {
	count := 0
	for i, want := range r.RefTokens {
		got := r.TestTokens[i]
		if got == want || i >= len(r.RefLogits) {
			continue
		}
		logits := r.RefLogits[i]
		peak := 0.0
		for _, x := range logits {
			peak = max(peak, math.Abs(float64(x)))
		}
		if float64(logits[want]-logits[got]) > 10*r.LogitsRelErr*peak {
			count++
		}
	}
	return count
}

// comparison carries one run's state between the two backends' observers.
type comparison struct {
	result     *CompareResult
	vocab      int
	keepLogits bool
	tokens     []int32 // teacher-forced decode inputs: the reference's greedy tokens
	// The reference's views of the current pass, kept until test's arrive.
	refQKV, refProbs [][]float32
	lastRows         [][]float32 // the reference's last prompt row per layer, [heads][capacity]
	refSeen, seen    int         // layers observed in the current pass
}

// run feeds both backends; budget > 0 evicts after the prompt.
func (c *comparison) run(ref, test gpu.Backend, prompt []int32, gen, capacity, budget int, logitsErr *float64) error {
	comp := budget > 0
	refSeq, err := gpu.New(ref).NewSequence(capacity, comp)
	if err != nil {
		return err
	}
	defer refSeq.Close()
	testSeq, err := gpu.New(test).NewSequence(capacity, comp)
	if err != nil {
		return err
	}
	defer testSeq.Close()
	L := ref.Config().NumHiddenLayers
	c.refQKV, c.refProbs, c.lastRows = make([][]float32, L), make([][]float32, L), make([][]float32, L)
	refLogits, testLogits := make([]float32, c.vocab), make([]float32, c.vocab)
	want := gpu.Want{QKV: true, Probs: true}
	feed := prompt
	for step := 0; step <= gen; step++ {
		prefill := step == 0
		c.refSeen, c.seen = 0, 0
		err := refSeq.Feed(feed, gpu.Outputs{Logits: refLogits, Want: want, Observe: func(v *gpu.LayerView) error {
			c.keep(v, prefill)
			return nil
		}})
		if err != nil {
			return fmt.Errorf("reference, step %d: %w", step, err)
		}
		err = testSeq.Feed(feed, gpu.Outputs{Logits: testLogits, Want: want, Observe: c.check})
		if err != nil {
			return fmt.Errorf("test, step %d: %w", step, err)
		}
		if c.refSeen != L || c.seen != L {
			return fmt.Errorf("step %d: %d layers observed on the reference and %d on the test backend, want %d",
				step, c.refSeen, c.seen, L)
		}
		c.result.Steps++
		*logitsErr = max(*logitsErr, relErr(testLogits, refLogits))
		if !comp {
			c.result.RefTokens = append(c.result.RefTokens, argmax(refLogits))
			c.result.TestTokens = append(c.result.TestTokens, argmax(testLogits))
			if c.keepLogits {
				c.result.RefLogits = append(c.result.RefLogits, slices.Clone(refLogits))
				c.result.TestLogits = append(c.result.TestLogits, slices.Clone(testLogits))
			}
		}
		if prefill && comp {
			if err := c.evict(refSeq, testSeq, ref.Config().NumAttentionHeads, len(prompt), budget, capacity); err != nil {
				return err
			}
		}
		if comp {
			feed = []int32{c.tokens[step]} // the full-cache run's tokens
		} else {
			c.tokens = append(c.tokens, argmax(refLogits))
			feed = []int32{c.tokens[step]}
		}
	}
	return nil
}

// keep stores the reference's view of one layer until the test backend's arrives.
func (c *comparison) keep(v *gpu.LayerView, prefill bool) {
	c.refSeen++
	c.refQKV[v.Layer] = append(append(append(c.refQKV[v.Layer][:0], v.Q...), v.K...), v.V...)
	c.refProbs[v.Layer] = append(append(c.refProbs[v.Layer][:0], v.Probs...), v.Comp...)
	if prefill { // the last prompt row of every head, for choosing victims
		rows := make([]float32, v.Heads*v.Capacity)
		for h := range v.Heads {
			copy(rows[h*v.Capacity:], v.ProbsRow(h, v.Rows-1))
		}
		c.lastRows[v.Layer] = rows
	}
}

// check compares the test backend's view of one layer with the reference's.
func (c *comparison) check(v *gpu.LayerView) error {
	c.seen++
	ref := c.refQKV[v.Layer]
	if len(ref) != len(v.Q)+len(v.K)+len(v.V) {
		return fmt.Errorf("layer %d: q, k and v sizes differ between the backends", v.Layer)
	}
	n := len(v.Q)
	for i, x := range [][]float32{v.Q, v.K, v.V} {
		c.result.QKVRelErr = max(c.result.QKVRelErr, relErr(x, ref[i*n:(i+1)*n]))
	}
	probs := c.refProbs[v.Layer]
	if len(probs) != len(v.Probs)+len(v.Comp) {
		return fmt.Errorf("layer %d: attention sizes differ between the backends", v.Layer)
	}
	for i, p := range slices.Concat(v.Probs, v.Comp) {
		c.result.ProbsMaxAbsErr = max(c.result.ProbsMaxAbsErr, math.Abs(float64(p)-float64(probs[i])))
	}
	return nil
}

// evict brings every (layer, head) of both sequences from prompt to budget tokens,
// with the same victims and weights.
func (c *comparison) evict(refSeq, testSeq *gpu.Sequence, heads, prompt, budget, capacity int) error {
	need := prompt - budget
	for l, rows := range c.lastRows {
		e := &policies.Eviction{Phase: policies.Prefill, Pos: prompt - 1, Heads: heads, Stride: capacity,
			Need: make([]int32, heads), Count: make([]int32, heads),
			Victims: make([]int32, heads*capacity), Weights: make([]float32, heads*capacity)}
		for h := range heads {
			row := rows[h*capacity : h*capacity+prompt]
			order := make([]int32, prompt-1) // never the last prompt token
			for i := range order {
				order[i] = int32(i)
			}
			sort.SliceStable(order, func(a, b int) bool { return row[order[a]] < row[order[b]] })
			for _, s := range order[:need] {
				e.Victim(h, s, row[s])
			}
		}
		if err := refSeq.Evict(l, e); err != nil {
			return fmt.Errorf("reference: %w", err)
		}
		if err := testSeq.Evict(l, e); err != nil {
			return fmt.Errorf("test: %w", err)
		}
	}
	return nil
}

// relErr is ‖a−b‖₂/‖b‖₂ (‖a‖₂ when b is zero).
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// argmax is greedy decoding's choice: the first largest logit.
func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}
