// Package region is the byte layout of the exchange region of kvsim's policy ABI
// (abi/ABI.md), versions 2.1 and 1.0: the header's field offsets, the flags and
// statuses, where the arrays go, and little-endian copies between Go slices and
// region bytes. The WASM host and the Go guest SDK share it, so that they cannot
// disagree on an offset.
//
// A 2.0 header is the 1.0 header (128 bytes, the same fields at the same offsets)
// followed by 128 more bytes of 2.0 fields (2.1 adds four in 2.0's reserved space, whose
// zero means "as 2.0"); a 1.0 plan lays out exactly what 1.0
// hosts did, so that 1.x guests see nothing of 2.0.
package region

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// ABI version this code speaks: the Go guest SDK speaks it, and the host also speaks
// the 1.0 dialect to 1.x guests.
const (
	Major = 2
	Minor = 1
	// Version is how kvpolicy_abi_version encodes it.
	Version = Major<<16 | Minor
	// Version20 is 2.0: a guest offers 2.1's capabilities only to a host of at least
	// 2.1, and a host reads them only from a guest of at least 2.1.
	Version20 = 2 << 16
	// Version1 is the 1.x dialect's version, which the host writes into a 1.x
	// guest's header.
	Version1 = 1 << 16
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
	FlagsKnown       = FlagUnbounded | FlagCompensation | FlagClairvoyant // in 1.x
	// 2.0: inputs and compact decode rows.
	FlagKeys    = 1 << 3
	FlagValues  = 1 << 4
	FlagQueries = 1 << 5
	FlagCompact = 1 << 6
	FlagsKnown2 = FlagsKnown | FlagKeys | FlagValues | FlagQueries | FlagCompact
)

// Capabilities a 2.1 guest offers in kvpolicy_new (the Caps field).
const (
	// CapFork: the instance can hand its prompt state to another instance of the
	// same module and params (kvpolicy_fork_save, kvpolicy_fork_load).
	CapFork   = 1 << 0
	CapsKnown = CapFork
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

	HeaderSize1 = 128 // the end of a 1.x header

	// 2.0 fields.
	Pool       = 128 // u32, guest (layout): policies.Pool
	PoolNeed   = 132 // i32, host (evict): fewest victims of all heads together
	KeysOff    = 136 // u32, host (array offsets)
	ValuesOff  = 140 // u32
	QueriesOff = 144 // u32
	LiveOff    = 148 // u32
	LenOff     = 152 // u32
	BudgetsOff = 156 // u32
	VecCap     = 160 // u32, host: floats each of keys, values and queries holds
	BudgetsCap = 164 // u32, host: entries the budgets array holds (≥ layers)

	// 2.1 fields.
	GuestCaps = 168 // u32, guest (kvpolicy_new): Cap flags; the host zeroes it before
	ForkPtr   = 172 // u32, guest (kvpolicy_fork_save): absolute address of the saved state
	ForkLen   = 176 // u32, guest (kvpolicy_fork_save), host (kvpolicy_fork_load): its bytes
	ForkOff   = 180 // u32, host (kvpolicy_fork_load): the state to load, from the region's start

	HeaderSize = 256 // the end of a 2.x header; 184..255 are reserved, zero
)

// Align is the alignment of the region and of every array in it.
const Align = 16

// MaxErrLen caps the error messages and log lines a host reads from a guest.
const MaxErrLen = 1024

// PrefillChunkFloats is how many probabilities a host sizes the probs array for, at
// least, so that prefill blocks travel in chunks of several rows.
const PrefillChunkFloats = 1 << 18

// VecChunkFloats is how many floats a host sizes each of the keys, values and
// queries arrays for, at most, unless one row of all heads needs more.
const VecChunkFloats = 1 << 16

// Caps are what a region's arrays hold. Major picks the dialect: 1 lays out the 1.x
// arrays only, and ignores VecCap and BudgetsCap.
type Caps struct {
	Major                    int
	Heads, ProbsCap, ListCap int
	VecCap, BudgetsCap       int
	ForkCap                  int // bytes of a forked prompt state to load (2.1)
}

// Plan is where the arrays sit for given capacities; 0 for arrays the dialect lacks.
type Plan struct {
	Caps
	Probs, Slot, Comp, Need, Count, Victims, Weights, Future int
	Keys, Values, Queries, Live, Len, Budgets, Fork          int
	Size, Params                                             int
}

// NewPlan lays out the arrays for the capacities c. It returns ok=false if the
// region would not fit in 4 GiB.
func NewPlan(c Caps) (Plan, bool) {
	const limit = math.MaxUint32
	if c.Heads < 0 || c.ProbsCap < 0 || c.ListCap < 0 || c.VecCap < 0 || c.BudgetsCap < 0 ||
		c.Heads > limit/4 || c.ProbsCap > limit/4 || c.ListCap > limit/4/max(c.Heads, 1) ||
		c.VecCap > limit/4 || c.BudgetsCap > limit/4 || c.ForkCap < 0 || c.ForkCap > limit {
		return Plan{}, false
	}
	p := Plan{Caps: c}
	off := headerSize(c.Major)
	next := func(bytes int) int {
		at := off
		off = alignUp(off + bytes)
		return at
	}
	p.Probs = next(4 * c.ProbsCap)
	p.Slot = next(4 * c.Heads)
	p.Comp = next(4 * c.Heads)
	p.Need = next(4 * c.Heads)
	p.Count = next(4 * c.Heads)
	p.Victims = next(4 * c.Heads * c.ListCap)
	p.Weights = next(4 * c.Heads * c.ListCap)
	p.Future = next(4 * c.Heads * c.ListCap)
	if c.Major >= 2 {
		p.Keys = next(4 * c.VecCap)
		p.Values = next(4 * c.VecCap)
		p.Queries = next(4 * c.VecCap)
		p.Live = next(4 * c.Heads * c.ListCap)
		p.Len = next(4 * c.Heads)
		p.Budgets = next(4 * c.BudgetsCap)
		p.Fork = next(c.ForkCap)
	} else {
		p.VecCap, p.BudgetsCap, p.ForkCap = 0, 0, 0
	}
	p.Size = off
	return p, off <= limit
}

// PlanFor sizes a region for a sequence: decode rows and victim lists as wide as the
// whole sequence, prefill chunks of at least PrefillChunkFloats probabilities, and
// (2.0) key, value and query chunks of one row or up to VecChunkFloats floats.
func PlanFor(major int, cfg Config) (Plan, bool) {
	H, P, T := cfg.Heads, cfg.PromptLen, cfg.MaxLen
	if H < 0 || P < 0 || T < 0 || cfg.HeadDim < 0 || cfg.Layers < 0 {
		return Plan{}, false
	}
	rows := max(1, min(P, PrefillChunkFloats/max(1, H*P)))
	c := Caps{Major: major, Heads: H, ProbsCap: H * max(T, rows*P), ListCap: T, BudgetsCap: cfg.Layers}
	if perRow := H * cfg.HeadDim; perRow > 0 {
		c.VecCap = perRow * max(1, min(rows, VecChunkFloats/perRow))
	}
	return NewPlan(c)
}

// Config is what PlanFor needs of a sequence's config.
type Config struct {
	Heads, HeadDim, Layers, PromptLen, MaxLen int
}

// ParamsPlan is a region of the given dialect that holds the header and n bytes of
// params.
func ParamsPlan(major, n int) Plan {
	at := headerSize(major)
	return Plan{Caps: Caps{Major: major}, Params: at, Size: alignUp(at + n)}
}

// headerSize is where a dialect's arrays may start.
func headerSize(major int) int {
	if major >= 2 {
		return HeaderSize
	}
	return HeaderSize1
}

func alignUp(n int) int { return (n + Align - 1) &^ (Align - 1) }

// WriteOffsets stores the plan's offsets and capacities in the header: a 2.0 plan
// also the 2.0 fields, a 1.0 plan nothing past the 1.x header.
func (p Plan) WriteOffsets(b []byte) {
	for _, f := range [...]struct{ at, v int }{
		{ProbsOff, p.Probs}, {SlotOff, p.Slot}, {CompOff, p.Comp}, {NeedOff, p.Need},
		{CountOff, p.Count}, {VictimsOff, p.Victims}, {WeightsOff, p.Weights}, {FutureOff, p.Future},
		{ProbsCap, p.ProbsCap}, {ListCap, p.ListCap},
	} {
		PutU32(b, f.at, uint32(f.v))
	}
	if p.Major < 2 {
		return
	}
	for _, f := range [...]struct{ at, v int }{
		{KeysOff, p.Keys}, {ValuesOff, p.Values}, {QueriesOff, p.Queries}, {LiveOff, p.Live},
		{LenOff, p.Len}, {BudgetsOff, p.Budgets}, {VecCap, p.VecCap}, {BudgetsCap, p.BudgetsCap},
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
