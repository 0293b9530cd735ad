package policies

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendFloat64s appends v to b, 8 little-endian bytes a value: the encoding of the
// builtins' fork states (ForkCodec).
func AppendFloat64s(b []byte, v []float64) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// ReadFloat64s fills dst from the start of b, as AppendFloat64s wrote it, and returns
// the rest of b. It fails if b is too short.
func ReadFloat64s(dst []float64, b []byte) ([]byte, error) {
	if len(b) < 8*len(dst) {
		return b, fmt.Errorf("fork state: %d bytes left, want at least %d", len(b), 8*len(dst))
	}
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return b[8*len(dst):], nil
}
