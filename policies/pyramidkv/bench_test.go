package pyramidkv

import (
	"testing"

	"github.com/kvsim/kvsim/policies/internal/pooltest"
)

func BenchmarkDecodeStepRecency(b *testing.B) {
	pooltest.BenchmarkDecode(b, New, map[string]any{"decode": "recency"})
}
func BenchmarkDecodeStepRescore(b *testing.B) {
	pooltest.BenchmarkDecode(b, New, map[string]any{"decode": "rescore"})
}
