package expectedattention

import (
	"testing"

	"github.com/kvsim/kvsim/policies/press/presstest"
)

func BenchmarkDecodeStep(b *testing.B) { presstest.BenchmarkDecode(b, New, nil) }

func BenchmarkDecodeStepNoCovariance(b *testing.B) {
	presstest.BenchmarkDecode(b, New, map[string]any{"covariance": "none"})
}
