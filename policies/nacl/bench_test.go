package nacl

import (
	"testing"

	"github.com/kvsim/kvsim/policies/policytest"
)

func BenchmarkDecodeStepReevict(b *testing.B) {
	policytest.BenchmarkDecode(b, New, map[string]any{"decode": "reevict", "proxy_ratio": 0.05})
}
