package snapkv

import (
	"testing"

	"github.com/kvsim/kvsim/policies/policytest"
)

func BenchmarkDecodeStepRecency(b *testing.B) {
	policytest.BenchmarkDecode(b, New, map[string]any{"decode": "recency"})
}
func BenchmarkDecodeStepRescore(b *testing.B) {
	policytest.BenchmarkDecode(b, New, map[string]any{"decode": "rescore"})
}
