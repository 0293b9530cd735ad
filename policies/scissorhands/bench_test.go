package scissorhands

import (
	"testing"

	"github.com/kvsim/kvsim/policies/policytest"
)

func BenchmarkDecodeStep(b *testing.B) { policytest.BenchmarkDecode(b, New, nil) }
