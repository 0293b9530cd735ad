package duo

import (
	"testing"

	"github.com/kvsim/kvsim/policies/internal/pooltest"
)

func BenchmarkDecodeStep(b *testing.B) {
	pooltest.BenchmarkDecode(b, New, map[string]any{"mask": "sfsf"})
}
