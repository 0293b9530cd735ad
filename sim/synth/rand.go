package synth

import (
	"math"
	"sync"
)

// Every random number in a trace comes from a splitmix64 stream whose seed is a hash of
// what it belongs to (model seed, preset, sample, layer, head, tensor kind, position).
// No stream is shared between two tensors, so Read gives the same bytes in any order.

const golden = 0x9e3779b97f4a7c15

// finalize is splitmix64's output function: a bijective mixer of 64 bits.
func finalize(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// mix hashes parts into key, in order.
func mix(key uint64, parts ...uint64) uint64 {
	for _, p := range parts {
		key = finalize(key ^ finalize(p+golden))
	}
	return key
}

// unit maps a hash to a uniform float64 in [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// stringKey hashes a name (FNV-1a) so that it can be mixed into a key.
func stringKey(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// Domain tags keep the streams of different quantities apart.
const (
	tagModelHead uint64 = iota + 1
	tagValueBasis
	tagSample
	tagToken
	tagSwitch
	tagHeavySalience
	tagLateSalience
	tagHeavyHead
	tagLateHead
	tagWeight
	tagQuery
	tagKey
	tagValue
	tagPhase
)

type stream struct{ state uint64 }

func newStream(key uint64) stream { return stream{state: key} }

func (s *stream) next() uint64 {
	s.state += golden
	return finalize(s.state)
}

// uniform returns a float64 in [lo, hi).
func (s *stream) uniform(lo, hi float64) float64 { return lo + (hi-lo)*unit(s.next()) }

// logUniform returns a float64 whose logarithm is uniform on [ln lo, ln hi).
func (s *stream) logUniform(lo, hi float64) float64 {
	return math.Exp(s.uniform(math.Log(lo), math.Log(hi)))
}

// normal returns a standard normal float32 (see normalTable).
func (s *stream) normal() float32 { return normalTable()[s.next()>>48] }

// normalTable holds the standard normal quantiles at (i+0.5)/65536: indexed by 16
// random bits it gives a normal draw with no transcendental function, which keeps Read
// fast. Its support is ±4.33 and its variance 0.99998.
var normalTable = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float32(math.Sqrt2 * math.Erfinv(2*(float64(i)+0.5)/(1<<16)-1))
	}
	return &t
})

// normals fills dst with standard normals, four per 64-bit draw.
func (s *stream) normals(dst []float32) {
	t := normalTable()
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		x := s.next()
		dst[i], dst[i+1], dst[i+2], dst[i+3] = t[x&0xffff], t[x>>16&0xffff], t[x>>32&0xffff], t[x>>48]
	}
	for ; i < len(dst); i++ {
		dst[i] = t[s.next()&0xffff]
	}
}
