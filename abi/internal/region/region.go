// Package region is the byte layout of the exchange region of kvsim's policy ABI v1
// (abi/ABI.md): the header's field offsets, the flags and statuses, where the arrays
// go, and little-endian copies between Go slices and region bytes. The WASM host
// and the Go guest SDK share it, so that they cannot disagree on an offset.
package region

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// ABI version this code speaks.
const (
	Major = 1
	Minor = 0
	// Version is how kvpolicy_abi_version encodes it.
	Version = Major<<16 | Minor
)

// Statuses a guest call returns. Any non-zero status is a failure.
const (
	OK    = 0
	Error = 1
)

// Layout flags.
const (
	FlagUnbounded    = 1 << 0
	FlagCompensation = 1 << 1
	FlagClairvoyant  = 1 << 2
	FlagsKnown       = FlagUnbounded | FlagCompensation | FlagClairvoyant
)

// Header field offsets, from the start of the region.
const (
	HostVersion = 0   // u32, host
	Size        = 4   // u32, host: the size the host asked for
	ParamsOff   = 8   // u32, host
	ParamsLen   = 12  // u32, host
	Layer       = 16  // i32, host (config)
	Layers      = 20  // i32
	Heads       = 24  // i32
	HeadDim     = 28  // i32
	PromptLen   = 32  // i32
	MaxLen      = 36  // i32
	Budget      = 40  // i32
	Reserved    = 44  // u32, zero
	Seed        = 48  // u64
	Slack       = 56  // i32, guest (layout)
	Flags       = 60  // u32, guest
	Phase       = 64  // i32, host (call)
	Pos         = 68  // i32
	Rows        = 72  // i32
	Stride      = 76  // i32
	ProbsOff    = 80  // u32, host (array offsets)
	SlotOff     = 84  // u32
	CompOff     = 88  // u32
	NeedOff     = 92  // u32
	CountOff    = 96  // u32
	VictimsOff  = 100 // u32
	WeightsOff  = 104 // u32
	FutureOff   = 108 // u32
	ErrPtr      = 112 // u32, guest: absolute address of the error message
	ErrLen      = 116 // u32
	ProbsCap    = 120 // u32, host: floats the probs array holds
	ListCap     = 124 // u32, host: room per head in victims, weights and future (≥ every stride)

	HeaderSize = 128
)

// Align is the alignment of the region and of every array in it.
const Align = 16

// MaxErrLen caps the error messages and log lines a host reads from a guest.
const MaxErrLen = 1024

// PrefillChunkFloats is how many probabilities a host sizes the probs array for, at
// least, so that prefill blocks travel in chunks of several rows.
const PrefillChunkFloats = 1 << 18

// Plan is where the arrays sit for given capacities.
type Plan struct {
	Heads, ProbsCap, ListCap                                               int
	Probs, Slot, Comp, Need, Count, Victims, Weights, Future, Size, Params int
}

// NewPlan lays out the arrays for heads heads, probsCap probabilities and listCap
// victims per head. It returns ok=false if the region would not fit in 4 GiB.
func NewPlan(heads, probsCap, listCap int) (Plan, bool) {
	const limit = math.MaxUint32
	if heads < 0 || probsCap < 0 || listCap < 0 || heads > limit/4 || probsCap > limit/4 || listCap > limit/4/max(heads, 1) {
		return Plan{}, false
	}
	p := Plan{Heads: heads, ProbsCap: probsCap, ListCap: listCap}
	off := HeaderSize
	next := func(bytes int) int {
		at := off
		off = alignUp(off + bytes)
		return at
	}
	p.Probs = next(4 * probsCap)
	p.Slot = next(4 * heads)
	p.Comp = next(4 * heads)
	p.Need = next(4 * heads)
	p.Count = next(4 * heads)
	p.Victims = next(4 * heads * listCap)
	p.Weights = next(4 * heads * listCap)
	p.Future = next(4 * heads * listCap)
	p.Size = off
	return p, off <= limit
}

// PlanFor sizes a region for a sequence: decode rows and victim lists as wide as the
// whole sequence, and prefill chunks of at least PrefillChunkFloats probabilities.
func PlanFor(heads, promptLen, maxLen int) (Plan, bool) {
	rows := max(1, min(promptLen, PrefillChunkFloats/max(1, heads*promptLen)))
	return NewPlan(heads, heads*max(maxLen, rows*promptLen), maxLen)
}

// ParamsPlan is a region that holds the header and n bytes of params.
func ParamsPlan(n int) Plan {
	return Plan{Params: HeaderSize, Size: alignUp(HeaderSize + n)}
}

func alignUp(n int) int { return (n + Align - 1) &^ (Align - 1) }

// WriteOffsets stores the plan's offsets and capacities in the header.
func (p Plan) WriteOffsets(b []byte) {
	for _, f := range [...]struct{ at, v int }{
		{ProbsOff, p.Probs}, {SlotOff, p.Slot}, {CompOff, p.Comp}, {NeedOff, p.Need},
		{CountOff, p.Count}, {VictimsOff, p.Victims}, {WeightsOff, p.Weights}, {FutureOff, p.Future},
		{ProbsCap, p.ProbsCap}, {ListCap, p.ListCap},
	} {
		PutU32(b, f.at, uint32(f.v))
	}
}

// U32 reads a header field.
func U32(b []byte, at int) uint32 { return binary.LittleEndian.Uint32(b[at:]) }

// I32 reads a header field.
func I32(b []byte, at int) int32 { return int32(binary.LittleEndian.Uint32(b[at:])) }

// U64 reads a header field.
func U64(b []byte, at int) uint64 { return binary.LittleEndian.Uint64(b[at:]) }

// PutU64 writes a header field.
func PutU64(b []byte, at int, v uint64) { binary.LittleEndian.PutUint64(b[at:], v) }

// PutU32 writes a header field.
func PutU32(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }

// PutI32 writes a header field.
func PutI32(b []byte, at int, v int32) { binary.LittleEndian.PutUint32(b[at:], uint32(v)) }

// littleEndian reports whether this machine stores words as the ABI does, in which
// case arrays cross the boundary as plain memory copies.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// PutFloats copies src into b at byte offset at.
func PutFloats(b []byte, at int, src []float32) {
	if littleEndian {
		copy(b[at:at+4*len(src)], unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src)))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(b[at+4*i:], math.Float32bits(v))
	}
}

// PutInts copies src into b at byte offset at.
func PutInts(b []byte, at int, src []int32) {
	if littleEndian {
		copy(b[at:at+4*len(src)], unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src)))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(b[at+4*i:], uint32(v))
	}
}

// Floats copies len(dst) floats from b at byte offset at into dst.
func Floats(dst []float32, b []byte, at int) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), b[at:at+4*len(dst)])
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[at+4*i:]))
	}
}

// Ints copies len(dst) ints from b at byte offset at into dst.
func Ints(dst []int32, b []byte, at int) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), b[at:at+4*len(dst)])
		return
	}
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(b[at+4*i:]))
	}
}

// Zero clears n bytes at offset at.
func Zero(b []byte, at, n int) { clear(b[at : at+n]) }
