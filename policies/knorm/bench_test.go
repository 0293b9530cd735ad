package knorm

import (
	"testing"

	"github.com/kvsim/kvsim/policies/press/presstest"
)

func BenchmarkDecodeStep(b *testing.B) { presstest.BenchmarkDecode(b, New, nil) }
