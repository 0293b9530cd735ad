package tova

import (
	"testing"

	"github.com/kvsim/kvsim/policies/policytest"
)

func BenchmarkDecodeStep(b *testing.B) { policytest.BenchmarkDecode(b, New, nil) }
func BenchmarkDecodeStepLayerwise(b *testing.B) {
	policytest.BenchmarkDecode(b, New, map[string]any{"layerwise": true})
}
