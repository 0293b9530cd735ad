// Package guest serves a Go eviction policy over kvsim's WASM policy ABI 2.1
// (abi/ABI.md),
// so that any package exporting
//
//	func New(p *policies.Params) (policies.Policy, error)
//
// builds unchanged into a .wasm module that kvsim loads with source = "wasm:FILE".
// The module's main package registers the constructor from an init function:
//
//	package main
//
//	import (
//		"github.com/kvsim/kvsim/abi/guest"
//		"example.com/mypolicy"
//	)
//
//	func init() { guest.Register(mypolicy.New) }
//
//	func main() {}
//
// and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o mypolicy.wasm .
//
// `kvsim policy build PKG` writes that main package for you and runs the build.
//
// The package exports the ABI's functions with //go:wasmexport when built for wasm.
// It decodes each call from the exchange region into the same policies.Attention and
// policies.Eviction values a native host passes, with slices that alias the region:
// nothing is copied or allocated per call. A policy that implements
// policies.LayerBudgeter serves kvpolicy_layer_budgets too, and one that implements
// policies.ForkCodec offers to fork (kvpolicy_fork_save, kvpolicy_fork_load). A panic in the policy becomes a failed
// call with the panic's message, not a crashed module.
package guest

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/kvsim/kvsim/abi/internal/region"
	"github.com/kvsim/kvsim/policies"
)

// Register makes newPolicy the policy this module serves. Call it once, from an init
// function of the main package: a reactor module runs package initialization when
// the host instantiates it, but never calls main.
func Register(newPolicy policies.New) { srv.newPolicy = newPolicy }

// srv is the module's one policy instance: the host instantiates one module per
// policy instance.
var srv server

// server decodes ABI calls into policy calls. Its methods mirror the ABI's exports.
// The region is little-endian, like wasm; the native tests of this package assume a
// little-endian machine too.
type server struct {
	newPolicy policies.New
	policy    policies.Policy

	mem       []uint64 // backing store of the region, 8-byte aligned
	buf       []byte   // the region
	heads     int
	headDim   int
	layout    policies.Layout
	attention policies.Attention
	eviction  policies.Eviction
	budgets   []int  // LayerBudgets' entries, kept between calls
	forkState []byte // the state kvpolicy_fork_save last saved, kept between calls
	errMsg    []byte
}

// buffer returns a region of at least size bytes, allocating only when the current
// one is too small. It returns nil if size is not positive.
func (s *server) buffer(size int32) []byte {
	if size <= 0 {
		return nil
	}
	if int(size) > len(s.buf) {
		s.mem = make([]uint64, (int(size)+7)/8)
		s.buf = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s.mem))), 8*len(s.mem))
	}
	return s.buf
}

// create builds the policy from the params the host wrote.
func (s *server) create() int32 {
	if s.newPolicy == nil {
		return s.fail(fmt.Errorf("no policy registered: call guest.Register(New) from an init function of the main package"))
	}
	off, n := int(region.U32(s.buf, region.ParamsOff)), int(region.U32(s.buf, region.ParamsLen))
	if off < region.HeaderSize || n > len(s.buf)-off {
		return s.fail(fmt.Errorf("host error: params at [%d, %d+%d) outside the %d-byte region", off, off, n, len(s.buf)))
	}
	return s.guard(func() error {
		params, err := policies.ParseParams(s.buf[off : off+n])
		if err != nil {
			return err
		}
		p, err := s.newPolicy(params)
		if err != nil {
			return err
		}
		s.policy = p
		if _, ok := p.(policies.ForkCodec); ok && region.U32(s.buf, region.HostVersion) >= region.Version {
			region.PutU32(s.buf, region.GuestCaps, region.CapFork)
		}
		return nil
	})
}

// forkSave saves the policy's prompt state where the header's fork fields point.
func (s *server) forkSave() int32 {
	fc, ok := s.policy.(policies.ForkCodec)
	if !ok || s.heads == 0 {
		return s.fail(fmt.Errorf("host error: kvpolicy_fork_save, but %T does not implement policies.ForkCodec or has no sequence", s.policy))
	}
	return s.guard(func() error {
		s.forkState = fc.AppendForkState(s.forkState[:0])
		region.PutU32(s.buf, region.ForkPtr, uint32(uintptr(unsafe.Pointer(unsafe.SliceData(s.forkState)))))
		region.PutU32(s.buf, region.ForkLen, uint32(len(s.forkState)))
		return nil
	})
}

// forkLoad passes the state the host copied into the region to the policy.
func (s *server) forkLoad() int32 {
	fc, ok := s.policy.(policies.ForkCodec)
	if !ok || s.heads == 0 {
		return s.fail(fmt.Errorf("host error: kvpolicy_fork_load, but %T does not implement policies.ForkCodec or has no sequence", s.policy))
	}
	off, n := int(region.U32(s.buf, region.ForkOff)), int(region.U32(s.buf, region.ForkLen))
	if off < region.HeaderSize || n > len(s.buf)-off {
		return s.fail(fmt.Errorf("host error: fork state at [%d, %d+%d) outside the %d-byte region", off, off, n, len(s.buf)))
	}
	return s.guard(func() error { return fc.LoadForkState(s.buf[off : off+n]) })
}

// init starts a sequence and writes the policy's layout into the header.
func (s *server) init() int32 {
	if s.policy == nil {
		return s.fail(fmt.Errorf("host error: kvpolicy_init before a successful kvpolicy_new"))
	}
	b, cfg := s.buf, s.config()
	s.heads = 0
	var layout policies.Layout
	status := s.guard(func() (err error) { layout, err = s.policy.Init(cfg); return err })
	if status != region.OK {
		return status
	}
	if layout.Pool == policies.PoolModel {
		if _, ok := s.policy.(policies.LayerBudgeter); !ok {
			return s.fail(fmt.Errorf("the layout asks for a model pool, but %T does not implement policies.LayerBudgeter", s.policy))
		}
	}
	s.heads, s.headDim, s.layout = cfg.Heads, cfg.HeadDim, layout
	var flags uint32
	for _, f := range [...]struct {
		set  bool
		flag uint32
	}{
		{layout.Unbounded, region.FlagUnbounded}, {layout.Compensation, region.FlagCompensation},
		{layout.Clairvoyant, region.FlagClairvoyant}, {layout.Keys, region.FlagKeys}, {layout.Values, region.FlagValues},
		{layout.Queries, region.FlagQueries}, {layout.Compact, region.FlagCompact},
	} {
		if f.set {
			flags |= f.flag
		}
	}
	region.PutI32(b, region.Slack, int32(layout.Slack))
	region.PutU32(b, region.Flags, flags)
	region.PutU32(b, region.Pool, uint32(layout.Pool))
	return region.OK
}

// config reads the header's config fields.
func (s *server) config() policies.Config {
	b := s.buf
	return policies.Config{
		Layer:     int(region.I32(b, region.Layer)),
		Layers:    int(region.I32(b, region.Layers)),
		Heads:     int(region.I32(b, region.Heads)),
		HeadDim:   int(region.I32(b, region.HeadDim)),
		PromptLen: int(region.I32(b, region.PromptLen)),
		MaxLen:    int(region.I32(b, region.MaxLen)),
		Budget:    int(region.I32(b, region.Budget)),
		Seed:      region.U64(b, region.Seed),
	}
}

// observe passes the attention the host wrote to the policy.
func (s *server) observe() int32 {
	b, a := s.buf, &s.attention
	a.Phase = policies.Phase(region.I32(b, region.Phase))
	a.Pos = int(region.I32(b, region.Pos))
	a.Rows = int(region.I32(b, region.Rows))
	a.Heads = s.heads
	a.Stride = int(region.I32(b, region.Stride))
	a.HeadDim = s.headDim
	var err error
	if a.Rows < 1 || a.Stride < 0 {
		err = fmt.Errorf("%d rows of stride %d", a.Rows, a.Stride)
	}
	decode := a.Phase == policies.Decode
	a.Probs, a.Slot, a.Comp, a.Live, a.Len = nil, nil, nil, nil, nil
	if err == nil {
		a.Probs, err = s.floats(region.ProbsOff, a.Heads*a.Rows*a.Stride)
	}
	if err == nil && decode {
		a.Slot, err = s.ints(region.SlotOff, a.Heads)
		if err == nil {
			a.Comp, err = s.floats(region.CompOff, a.Heads)
		}
	}
	if err == nil && decode && s.layout.Compact {
		a.Live, err = s.ints(region.LiveOff, a.Heads*a.Stride)
		if err == nil {
			a.Len, err = s.ints(region.LenOff, a.Heads)
		}
		for h := 0; err == nil && h < a.Heads; h++ {
			if n := a.Len[h]; n < 0 || int(n) > a.Stride {
				err = fmt.Errorf("compact row of head %d lists %d slots, outside [0, stride %d]", h, n, a.Stride)
			}
		}
	}
	a.Keys, a.Values, a.Queries = nil, nil, nil
	if err == nil && (s.layout.Keys || s.layout.Values || s.layout.Queries) {
		err = s.vectors(a)
	}
	if err != nil {
		return s.fail(fmt.Errorf("host error: observe: %w", err))
	}
	return s.guard(func() error { return s.policy.Observe(a) })
}

// evict asks the policy for victims; it writes them into the region's arrays.
func (s *server) evict() int32 {
	b, e := s.buf, &s.eviction
	e.Phase = policies.Phase(region.I32(b, region.Phase))
	e.Pos = int(region.I32(b, region.Pos))
	e.Heads = s.heads
	e.Stride = int(region.I32(b, region.Stride))
	n := e.Heads * e.Stride
	var err error
	e.Need, err = s.ints(region.NeedOff, e.Heads)
	if err == nil {
		e.Count, err = s.ints(region.CountOff, e.Heads)
	}
	if err == nil {
		e.Victims, err = s.ints(region.VictimsOff, n)
	}
	e.PoolNeed = 0
	if s.layout.Pool != policies.PoolHead {
		e.PoolNeed = int(region.I32(b, region.PoolNeed))
	}
	e.Weights, e.Future = nil, nil
	if err == nil && s.layout.Compensation {
		e.Weights, err = s.floats(region.WeightsOff, n)
	}
	if err == nil && s.layout.Clairvoyant {
		e.Future, err = s.floats(region.FutureOff, n)
	}
	if err == nil && (e.Stride < 0 || e.PoolNeed < 0) {
		err = fmt.Errorf("stride %d, pool need %d", e.Stride, e.PoolNeed)
	}
	if err != nil {
		return s.fail(fmt.Errorf("host error: evict: %w", err))
	}
	return s.guard(func() error { return s.policy.Evict(e) })
}

// vectors views the keys, values and queries the layout asks for.
func (s *server) vectors(a *policies.Attention) error {
	n := a.Heads * a.Rows * a.HeadDim
	for _, v := range [...]struct {
		asked bool
		field int
		dst   *[]float32
	}{{s.layout.Keys, region.KeysOff, &a.Keys}, {s.layout.Values, region.ValuesOff, &a.Values}, {s.layout.Queries, region.QueriesOff, &a.Queries}} {
		if v.asked {
			var err error
			if *v.dst, err = s.floats(v.field, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// layerBudgets asks the policy to divide a model pool among layers, for the config
// in the header, and writes the entries into the region's budgets array.
func (s *server) layerBudgets() int32 {
	lb, ok := s.policy.(policies.LayerBudgeter)
	if !ok {
		return s.fail(fmt.Errorf("host error: kvpolicy_layer_budgets, but %T does not implement policies.LayerBudgeter", s.policy))
	}
	cfg := s.config()
	out, err := s.ints(region.BudgetsOff, cfg.Layers)
	if err != nil || cfg.Layers < 1 {
		return s.fail(fmt.Errorf("host error: layer budgets for %d layers: %v", cfg.Layers, err))
	}
	if cap(s.budgets) < cfg.Layers {
		s.budgets = make([]int, cfg.Layers)
	}
	entries := s.budgets[:cfg.Layers]
	clear(entries)
	return s.guard(func() error {
		if err := lb.LayerBudgets(cfg, entries); err != nil {
			return err
		}
		for l, n := range entries {
			if n < 0 || n > math.MaxInt32 {
				return fmt.Errorf("layer %d gets %d tokens, outside [0, 2^31)", l, n)
			}
			out[l] = int32(n)
		}
		return nil
	})
}

// floats views n float32s at the offset stored in header field field.
func (s *server) floats(field, n int) ([]float32, error) {
	off, err := s.span(field, n)
	if err != nil || n == 0 {
		return nil, err
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&s.buf[off])), n), nil
}

// ints views n int32s at the offset stored in header field field.
func (s *server) ints(field, n int) ([]int32, error) {
	off, err := s.span(field, n)
	if err != nil || n == 0 {
		return nil, err
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&s.buf[off])), n), nil
}

// span checks that n 4-byte words at the offset in header field field lie in the
// region, aligned.
func (s *server) span(field, n int) (int, error) {
	off := int(region.U32(s.buf, field))
	if n < 0 || off < region.HeaderSize || off%4 != 0 || n > (len(s.buf)-off)/4 {
		return 0, fmt.Errorf("array of %d words at offset %d outside the %d-byte region", n, off, len(s.buf))
	}
	return off, nil
}

// guard runs a policy call, turning an error or a panic into a failed status.
func (s *server) guard(call func() error) (status int32) {
	defer func() {
		if r := recover(); r != nil {
			status = s.fail(fmt.Errorf("panic: %v", r))
		}
	}()
	if err := call(); err != nil {
		return s.fail(err)
	}
	return region.OK
}

// fail records err's message, where the header's error fields point, and returns the
// failure status.
func (s *server) fail(err error) int32 {
	msg := err.Error()
	if len(msg) > region.MaxErrLen {
		msg = msg[:region.MaxErrLen]
	}
	s.errMsg = append(s.errMsg[:0], msg...)
	if len(s.buf) >= region.HeaderSize {
		region.PutU32(s.buf, region.ErrPtr, uint32(uintptr(unsafe.Pointer(unsafe.SliceData(s.errMsg)))))
		region.PutU32(s.buf, region.ErrLen, uint32(len(s.errMsg)))
	}
	return region.Error
}
