package policies

import (
	"math"
	"strings"
	"testing"
)

// TestFloat64s: what AppendFloat64s writes, ReadFloat64s reads back, bit for bit, and
// a short state fails.
func TestFloat64s(t *testing.T) {
	v := []float64{0, -1.5, math.Pi, math.SmallestNonzeroFloat64}
	b := AppendFloat64s([]byte{7}, v)
	if len(b) != 1+8*len(v) || b[0] != 7 {
		t.Fatalf("appended %d bytes after the prefix, want %d", len(b)-1, 8*len(v))
	}
	got := make([]float64, len(v))
	rest, err := ReadFloat64s(got, b[1:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("rest %d bytes, err %v", len(rest), err)
	}
	for i := range v {
		if math.Float64bits(got[i]) != math.Float64bits(v[i]) {
			t.Errorf("value %d: %v, want %v", i, got[i], v[i])
		}
	}
	if _, err := ReadFloat64s(got, b[1:30]); err == nil || !strings.Contains(err.Error(), "29 bytes left, want at least 32") {
		t.Errorf("short state: %v", err)
	}
}
