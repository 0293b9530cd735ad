package attnref

import (
	"math"
	"testing"

	"github.com/kvsim/kvsim/policies/policytest"
)

// TestProbs: logits 0, ln 2 and ln 5 give probabilities 1/8, 2/8 and 5/8, in the
// order of the positions asked for; Sent rounds them to float32 by position.
func TestProbs(t *testing.T) {
	logits := []float64{0, math.Log(2), math.Log(5)}
	seq := policytest.Sequence{Heads: 1, PromptLen: 3, MaxLen: 3, Logit: func(h, q, j int) float64 { return logits[j] + 7 }}
	got := Probs(seq, 0, 2, []int{2, 0, 1})
	for i, want := range []float64{5.0 / 8, 1.0 / 8, 2.0 / 8} {
		if math.Abs(got[i]-want) > 1e-15 {
			t.Errorf("probs[%d] = %v, want %v", i, got[i], want)
		}
	}
	sent := Sent(seq, 0, 2, []int{0, 2})
	if sent[0] != float64(float32(1.0/6)) || sent[2] != float64(float32(5.0/6)) || len(sent) != 2 {
		t.Errorf("sent %v", sent)
	}
	if p := Prefix(3); len(p) != 3 || p[0] != 0 || p[2] != 2 {
		t.Errorf("prefix %v", p)
	}
}
