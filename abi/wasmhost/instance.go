package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/kvsim/kvsim/abi/internal/region"
	"github.com/kvsim/kvsim/abi/wasmhost/internal/meter"
	"github.com/kvsim/kvsim/policies"
)

// instance is one module instance serving one policy instance.
type instance struct {
	m     *Module
	mod   api.Module
	mem   api.Memory
	fns   [numFns]api.Function
	stack []uint64 // the call stack for CallWithStack, allocated once
	ctx   context.Context
	gauge *gauge            // nil when unmetered
	fuel  api.MutableGlobal // the meter's counter; nil when unmetered
	out   *outputTail

	// view is the whole guest memory as the host last read it. It is valid until the
	// guest grows its memory, which only a call can do: after each call, if the size
	// changed, the host reads the view again.
	view []byte
	base int         // the region's address
	size int         // and its size
	plan region.Plan // where the arrays are in it

	cfg    policies.Config
	layout policies.Layout
	vecs   []vector // the inputs of the observe under way, kept to spare an allocation
	// zeroedProbs: since init zeroed the probs array, only prefill rows, in order,
	// were written there. Each wrote a prefix longer than any before it in the same
	// place, so everything past a row's causal part is still zero.
	zeroedProbs bool
	// canFork: the guest offered FORK in kvpolicy_new (ABI 2.1).
	canFork bool
	// broken holds the failure (trap, exit, fuel, deadline) that closed the instance.
	broken error

	closeOnce sync.Once
}

// instantiate makes a module instance with no filesystem, network or environment,
// and runs the WASI reactor's _initialize if it has one. Instantiation, with the
// module's start function, and _initialize are metered calls.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	in := &instance{m: m, stack: make([]uint64, 1), ctx: ctx, out: &outputTail{}}
	if m.fuel != Unmetered {
		in.gauge = &gauge{budget: m.fuel, deadline: m.deadline}
		in.ctx = context.WithValue(ctx, gaugeKey{}, in.gauge)
		in.gauge.begin(0) // the global's initial value
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize runs below, as a call of its own
		WithStdout(in.out).
		WithStderr(in.out).
		WithRandSource(deterministicRand())
	mod, err := m.rt.InstantiateModule(in.ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", in.describe(err))
	}
	in.mod, in.mem = mod, mod.Memory()
	for i, name := range exportNames {
		if i < numRequired || m.info.ABIMajor >= 2 { // a 1.x guest is called as 1.0 was
			in.fns[i] = mod.ExportedFunction(name)
		}
	}
	if in.gauge != nil {
		in.fuel = mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
		in.gauge.end(int64(in.fuel.Get()))
	}
	in.readView()
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if _, err := in.callFunc(f, "_initialize", 0); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// close releases the module instance. It is safe to call more than once.
func (in *instance) close() {
	in.closeOnce.Do(func() { in.mod.Close(context.Background()) })
}

// Close ends the instance. Calls after it fail.
func (in *instance) Close() error {
	in.close()
	if in.broken == nil {
		in.broken = errors.New("instance closed")
	}
	return nil
}

func (in *instance) readView() {
	in.view, _ = in.mem.Read(0, in.mem.Size())
}

// call runs export fn with one argument and returns its result.
func (in *instance) call(fn int, arg uint64) (uint64, error) {
	return in.callFunc(in.fns[fn], exportNames[fn], arg)
}

// callFunc runs f, metered. A trap, an exit, spent fuel or the deadline closes the
// instance for good.
func (in *instance) callFunc(f api.Function, name string, arg uint64) (uint64, error) {
	if in.broken != nil {
		return 0, in.broken
	}
	in.stack[0] = arg
	if in.gauge != nil {
		give := min(fuelChunk, in.gauge.budget)
		in.gauge.begin(give)
		in.fuel.Set(uint64(give))
	}
	err := f.CallWithStack(in.ctx, in.stack)
	if in.gauge != nil {
		in.gauge.end(int64(in.fuel.Get()))
	}
	if err != nil {
		in.broken = fmt.Errorf("%s: %w", name, in.describe(err))
		in.close()
		return 0, in.broken
	}
	if len(in.view) != int(in.mem.Size()) {
		in.readView()
	}
	return in.stack[0], nil
}

// callStatus runs a status-returning export. A failed status becomes an error with
// the guest's message.
func (in *instance) callStatus(fn int) error {
	r := in.region()
	region.PutU32(r, region.ErrPtr, 0)
	region.PutU32(r, region.ErrLen, 0)
	v, err := in.call(fn, 0)
	if err != nil {
		return err
	}
	if status := int32(v); status != region.OK {
		return fmt.Errorf("%s: %w", exportNames[fn], in.guestError(status))
	}
	return nil
}

// guestError reads the message a guest left with a failed status.
func (in *instance) guestError(status int32) error {
	r := in.region()
	ptr, n := uint64(region.U32(r, region.ErrPtr)), uint64(region.U32(r, region.ErrLen))
	if n == 0 {
		return fmt.Errorf("failed with status %d and no message", status)
	}
	n = min(n, region.MaxErrLen)
	if ptr+n > uint64(len(in.view)) {
		return fmt.Errorf("failed with status %d; its error message at [%d, %d) is outside guest memory (%d bytes)", status, ptr, ptr+n, len(in.view))
	}
	msg := printable(string(in.view[ptr : ptr+n]))
	if status != region.Error {
		return fmt.Errorf("failed with status %d: %s", status, msg)
	}
	return errors.New(msg)
}

// describe turns a wazero error into one line: fuel spent, the deadline, an exit
// with the first lines the guest printed, or a trap with its innermost frames.
func (in *instance) describe(err error) error {
	var exit *sys.ExitError
	var msg string
	stopped := in.gauge != nil && (in.gauge.exhausted || in.gauge.late)
	switch {
	case stopped && in.gauge.exhausted:
		msg = fmt.Sprintf("fuel exhausted: more than %d units of work in one call (limits.fuel)", in.m.fuel) + frames(err)
	case stopped:
		msg = fmt.Sprintf("still running after the %v deadline (limits.deadline_ms, the wall-clock backstop), stopped", in.m.deadline) + frames(err)
	case errors.As(err, &exit):
		msg = fmt.Sprintf("exited with code %d", exit.ExitCode())
	default:
		lines := strings.Split(err.Error(), "\n")
		msg = strings.TrimSuffix(strings.TrimSpace(lines[0]), " (recovered by wazero)") + frames(err)
	}
	// Runtimes print why they gave up (Go: "fatal error: out of memory").
	if out := in.out.summary(); out != "" && !stopped {
		msg += "; it printed: " + out
	}
	// A guest near its page limit most likely failed to grow: say so.
	if in.mem != nil {
		if pages := in.mem.Size() / 65536; pages >= in.m.memPages*3/4 {
			msg += fmt.Sprintf("; guest memory was %d of at most %d pages (limits.memory_pages)", pages, in.m.memPages)
		}
	}
	return errors.New(msg)
}

// frames is " (in f < g < h)": the innermost guest frames of a wazero error's stack
// trace, without the meter's tick.
func frames(err error) string {
	var fs []string
	for _, l := range strings.Split(err.Error(), "\n")[1:] {
		l = strings.TrimPrefix(strings.TrimSpace(l), ".") // the instance has no name
		if l == "" || l == "wasm stack trace:" || strings.HasPrefix(l, meter.ImportModule+"."+meter.ImportName) {
			continue
		}
		if fs = append(fs, l); len(fs) == 3 {
			break
		}
	}
	if len(fs) == 0 {
		return ""
	}
	return " (in " + strings.Join(fs, " < ") + ")"
}

// region is the exchange region in the current view.
func (in *instance) region() []byte { return in.view[in.base : in.base+in.size] }

// setRegion asks the guest for a region of size bytes and checks where it put it.
func (in *instance) setRegion(size int) error {
	v, err := in.call(fnBuffer, uint64(size))
	if err != nil {
		return err
	}
	ptr := uint64(uint32(v))
	switch {
	case ptr == 0:
		return fmt.Errorf("kvpolicy_buffer(%d) returned 0: the guest could not allocate its region", size)
	case ptr%8 != 0:
		return fmt.Errorf("kvpolicy_buffer(%d) returned %d, which is not 8-byte aligned", size, ptr)
	case ptr+uint64(size) > uint64(len(in.view)):
		return fmt.Errorf("kvpolicy_buffer(%d) returned [%d, %d), outside guest memory (%d bytes)", size, ptr, ptr+uint64(size), len(in.view))
	}
	in.base, in.size = int(ptr), size
	r := in.region()
	version := uint32(region.Version)
	if in.major() == 1 {
		version = region.Version1 // a 1.x guest sees a 1.0 host
	}
	region.PutU32(r, region.HostVersion, version)
	region.PutU32(r, region.Size, uint32(size))
	return nil
}

// major is the dialect the instance speaks: its module's major version.
func (in *instance) major() int { return in.m.info.ABIMajor }

// create passes the params to kvpolicy_new.
func (in *instance) create(params []byte) error {
	plan := region.ParamsPlan(in.major(), len(params))
	if err := in.setRegion(plan.Size); err != nil {
		return err
	}
	r := in.region()
	region.PutU32(r, region.ParamsOff, uint32(plan.Params))
	region.PutU32(r, region.ParamsLen, uint32(len(params)))
	copy(r[plan.Params:], params)
	if in.major() >= 2 {
		region.PutU32(r, region.GuestCaps, 0)
	}
	if err := in.callStatus(fnNew); err != nil {
		return err
	}
	return in.readCaps()
}

// readCaps reads what a 2.1 guest offered in kvpolicy_new.
func (in *instance) readCaps() error {
	info := in.m.info
	if info.ABIMajor<<16|info.ABIMinor < region.Version {
		return nil // a 2.0 or 1.x guest offers nothing
	}
	caps := region.U32(in.region(), region.GuestCaps)
	if caps&^region.CapsKnown != 0 {
		return fmt.Errorf("kvpolicy_new: capabilities %#x: want within %#x", caps, region.CapsKnown)
	}
	if in.canFork = caps&region.CapFork != 0; in.canFork && (in.fns[fnForkSave] == nil || in.fns[fnForkLoad] == nil) {
		return fmt.Errorf("kvpolicy_new: the guest offers FORK, but the module does not export %s and %s", exportNames[fnForkSave], exportNames[fnForkLoad])
	}
	return nil
}

// Init starts a sequence: it sizes the region for cfg, then calls kvpolicy_init.
func (in *instance) Init(cfg policies.Config) (policies.Layout, error) {
	layout, err := in.start(cfg)
	return layout, in.named(err)
}

// Observe copies the attention into the region, in chunks of rows if it does not fit,
// and calls kvpolicy_observe for each chunk.
func (in *instance) Observe(a *policies.Attention) error { return in.named(in.observe(a)) }

// Evict writes the request, calls kvpolicy_evict, and copies the victims back after
// checking every count against the victim lists' capacity.
func (in *instance) Evict(e *policies.Eviction) error { return in.named(in.evict(e)) }

// named prefixes the module's name: the one place errors get it.
func (in *instance) named(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", in.m.name, err)
}

func (in *instance) start(cfg policies.Config) (policies.Layout, error) {
	if cfg.Heads < 1 || cfg.PromptLen < 0 || cfg.MaxLen < cfg.PromptLen {
		return policies.Layout{}, fmt.Errorf("bad config: %d heads, prompt %d, max length %d", cfg.Heads, cfg.PromptLen, cfg.MaxLen)
	}
	plan, ok := region.PlanFor(in.major(), region.Config{Heads: cfg.Heads, HeadDim: cfg.HeadDim, Layers: cfg.Layers, PromptLen: cfg.PromptLen, MaxLen: cfg.MaxLen})
	if !ok {
		return policies.Layout{}, fmt.Errorf("a config of %d layers, %d heads of dimension %d and %d tokens does not fit a 32-bit guest", cfg.Layers, cfg.Heads, cfg.HeadDim, cfg.MaxLen)
	}
	in.cfg, in.layout = cfg, policies.Layout{}
	layout, err := in.init(plan)
	if err != nil {
		in.cfg = policies.Config{} // Observe and Evict refuse until an Init succeeds
		return policies.Layout{}, err
	}
	in.layout = layout
	return layout, nil
}

func (in *instance) init(plan region.Plan) (policies.Layout, error) {
	if err := in.fit(plan.Caps); err != nil {
		return policies.Layout{}, err
	}
	r := in.region()
	region.Zero(r, in.plan.Probs, 4*in.plan.ProbsCap)
	in.zeroedProbs = true
	region.PutI32(r, region.Slack, 0)
	region.PutU32(r, region.Flags, 0)
	known := uint32(region.FlagsKnown)
	if in.major() >= 2 {
		region.PutU32(r, region.Pool, 0)
		known = region.FlagsKnown2
	}
	if err := in.callStatus(fnInit); err != nil {
		return policies.Layout{}, err
	}
	r = in.region()
	slack, flags := region.I32(r, region.Slack), region.U32(r, region.Flags)
	if slack < 0 || flags&^known != 0 {
		return policies.Layout{}, fmt.Errorf("kvpolicy_init: layout with slack %d and flags %#x: want slack ≥ 0 and flags within %#x", slack, flags, known)
	}
	layout := policies.Layout{
		Slack:        int(slack),
		Unbounded:    flags&region.FlagUnbounded != 0,
		Compensation: flags&region.FlagCompensation != 0,
		Clairvoyant:  flags&region.FlagClairvoyant != 0,
		Keys:         flags&region.FlagKeys != 0,
		Values:       flags&region.FlagValues != 0,
		Queries:      flags&region.FlagQueries != 0,
		Compact:      flags&region.FlagCompact != 0,
	}
	if in.major() >= 2 {
		switch pool := policies.Pool(region.U32(r, region.Pool)); {
		case pool != policies.PoolHead && pool != policies.PoolLayer && pool != policies.PoolModel:
			return policies.Layout{}, fmt.Errorf("kvpolicy_init: layout with pool %d: want 0 (head), 1 (layer) or 2 (model)", uint32(pool))
		case pool == policies.PoolModel && in.fns[fnLayerBudgets] == nil:
			return policies.Layout{}, fmt.Errorf("kvpolicy_init: the layout asks for a model pool, but the module does not export %s, which divides it among layers", exportNames[fnLayerBudgets])
		default:
			layout.Pool = pool
		}
	}
	return layout, nil
}

// fit lays the arrays out for the given capacities, or the current ones where they
// are larger, asks the guest for a larger region only if they do not fit, and writes
// the current config and the offsets into the header.
func (in *instance) fit(c region.Caps) error {
	c.Major = in.major()
	c.ProbsCap, c.ListCap = max(c.ProbsCap, in.plan.ProbsCap), max(c.ListCap, in.plan.ListCap)
	c.VecCap, c.BudgetsCap = max(c.VecCap, in.plan.VecCap), max(c.BudgetsCap, in.plan.BudgetsCap)
	c.ForkCap = max(c.ForkCap, in.plan.ForkCap)
	plan, ok := region.NewPlan(c)
	if !ok {
		return fmt.Errorf("a region for %d heads, %d probabilities, %d victims per head and %d-float vectors does not fit a 32-bit guest", c.Heads, c.ProbsCap, c.ListCap, c.VecCap)
	}
	if plan.Size > in.size {
		if err := in.setRegion(plan.Size); err != nil {
			return err
		}
		in.zeroedProbs = false // a new region holds whatever the guest left there
	}
	in.plan = plan
	plan.WriteOffsets(in.region())
	in.writeConfig(in.cfg)
	return nil
}

// writeConfig writes cfg into the header's config fields.
func (in *instance) writeConfig(cfg policies.Config) {
	r := in.region()
	for _, f := range [...]struct{ at, v int }{
		{region.Layer, cfg.Layer}, {region.Layers, cfg.Layers}, {region.Heads, cfg.Heads}, {region.HeadDim, cfg.HeadDim},
		{region.PromptLen, cfg.PromptLen}, {region.MaxLen, cfg.MaxLen}, {region.Budget, cfg.Budget},
	} {
		region.PutI32(r, f.at, int32(f.v))
	}
	region.PutU64(r, region.Seed, cfg.Seed)
}

func (in *instance) observe(a *policies.Attention) error {
	H, S, D := in.cfg.Heads, a.Stride, in.cfg.HeadDim
	if H == 0 {
		return errors.New("observe before a successful init")
	}
	decode := a.Phase == policies.Decode
	if a.Heads != H || a.Rows < 1 || S < 0 || len(a.Probs) < H*a.Rows*S ||
		(decode && (len(a.Slot) < H || (a.Comp != nil && len(a.Comp) < H))) {
		return fmt.Errorf("observe: attention of %d heads, %d rows, stride %d, %d probabilities and %d slots does not fit the config's %d heads",
			a.Heads, a.Rows, S, len(a.Probs), len(a.Slot), H)
	}
	vecs, err := in.inputs(a)
	if err != nil {
		return err
	}
	compact := decode && in.layout.Compact
	if compact {
		if err := checkCompact(a); err != nil {
			return err
		}
	}
	if H*S > in.plan.ProbsCap || (compact && S > in.plan.ListCap) {
		if err := in.fit(region.Caps{Heads: H, ProbsCap: H * S, ListCap: S}); err != nil {
			return err
		}
	}
	chunk := a.Rows
	if H*S > 0 {
		chunk = min(a.Rows, in.plan.ProbsCap/(H*S))
	}
	if len(vecs) > 0 && H*D > 0 {
		chunk = min(chunk, in.plan.VecCap/(H*D))
	}
	for r0 := 0; r0 < a.Rows; r0 += chunk {
		rows := min(chunk, a.Rows-r0)
		r := in.region()
		region.PutI32(r, region.Phase, int32(a.Phase))
		region.PutI32(r, region.Pos, int32(a.Pos+r0))
		region.PutI32(r, region.Rows, int32(rows))
		region.PutI32(r, region.Stride, int32(S))
		switch {
		case compact:
			// Each head's row holds Len[h] entries: copy those, not the stride.
			for h := 0; h < H; h++ {
				n := int(a.Len[h])
				region.PutFloats(r, in.plan.Probs+4*h*S, a.Probs[h*S:h*S+n])
				region.PutInts(r, in.plan.Live+4*h*S, a.Live[h*S:h*S+n])
			}
			region.PutInts(r, in.plan.Len, a.Len[:H])
		case !decode && in.zeroedProbs:
			// Row i of a prefill block is zero past slot i, and so is the region
			// there: copy the causal part only, half the bytes.
			for h := 0; h < H; h++ {
				for i := 0; i < rows; i++ {
					n := min(a.Pos+r0+i+1, S)
					src := a.Probs[(h*a.Rows+r0+i)*S:][:n]
					region.PutFloats(r, in.plan.Probs+4*(h*rows+i)*S, src)
				}
			}
		case rows == a.Rows:
			region.PutFloats(r, in.plan.Probs, a.Probs[:H*rows*S])
		default:
			for h := 0; h < H; h++ {
				src := a.Probs[(h*a.Rows+r0)*S : (h*a.Rows+r0+rows)*S]
				region.PutFloats(r, in.plan.Probs+4*h*rows*S, src)
			}
		}
		for _, v := range vecs {
			for h := 0; h < H; h++ {
				region.PutFloats(r, v.at+4*h*rows*D, v.src[(h*a.Rows+r0)*D:(h*a.Rows+r0+rows)*D])
			}
		}
		if decode {
			in.zeroedProbs = false
			region.PutInts(r, in.plan.Slot, a.Slot[:H])
			if a.Comp != nil {
				region.PutFloats(r, in.plan.Comp, a.Comp[:H])
			} else {
				region.Zero(r, in.plan.Comp, 4*H)
			}
		}
		if err := in.callStatus(fnObserve); err != nil {
			return err
		}
	}
	return nil
}

// vector is an input array to copy: the host's vectors and where they go.
type vector struct {
	src []float32
	at  int
}

// inputs checks the key, value and query vectors the layout asks for and says where
// each goes; nil for a policy that asks for none.
func (in *instance) inputs(a *policies.Attention) ([]vector, error) {
	l, p := in.layout, in.plan
	if !l.Keys && !l.Values && !l.Queries {
		return nil, nil
	}
	n := in.cfg.Heads * a.Rows * in.cfg.HeadDim
	in.vecs = in.vecs[:0]
	for _, v := range [...]struct {
		asked bool
		name  string
		src   []float32
		at    int
	}{{l.Keys, "keys", a.Keys, p.Keys}, {l.Values, "values", a.Values, p.Values}, {l.Queries, "queries", a.Queries, p.Queries}} {
		if !v.asked {
			continue
		}
		if a.HeadDim != in.cfg.HeadDim || len(v.src) < n {
			return nil, fmt.Errorf("observe: the layout asks for %s, but the attention carries %d floats of dimension %d, want %d rows × %d heads × %d",
				v.name, len(v.src), a.HeadDim, a.Rows, in.cfg.Heads, in.cfg.HeadDim)
		}
		in.vecs = append(in.vecs, vector{v.src, v.at})
	}
	return in.vecs, nil
}

// checkCompact checks a compact decode row's lists against its stride.
func checkCompact(a *policies.Attention) error {
	H, S := a.Heads, a.Stride
	if len(a.Len) < H || len(a.Live) < H*S {
		return fmt.Errorf("observe: the layout asks for compact rows, but the attention carries %d lengths and %d live slots, want %d and %d heads × stride %d",
			len(a.Len), len(a.Live), H, H, S)
	}
	for h := 0; h < H; h++ {
		if n := a.Len[h]; n < 0 || int(n) > S {
			return fmt.Errorf("observe: compact row of head %d lists %d slots, outside [0, stride %d]", h, n, S)
		}
	}
	return nil
}

func (in *instance) evict(e *policies.Eviction) error {
	H, S := in.cfg.Heads, e.Stride
	if H == 0 {
		return errors.New("evict before a successful init")
	}
	comp := in.layout.Compensation && e.Weights != nil
	if e.Heads != H || S < 0 || len(e.Need) < H || len(e.Count) < H || len(e.Victims) < H*S ||
		(comp && len(e.Weights) < H*S) || (e.Future != nil && len(e.Future) < H*S) {
		return fmt.Errorf("evict: request of %d heads with stride %d and lists of %d victims does not fit the config's %d heads",
			e.Heads, S, len(e.Victims), H)
	}
	pooled := in.layout.Pool != policies.PoolHead
	if e.PoolNeed < 0 || e.PoolNeed > math.MaxInt32 || (!pooled && e.PoolNeed != 0) {
		return fmt.Errorf("evict: a pool need of %d for a layout with a %v pool", e.PoolNeed, in.layout.Pool)
	}
	if in.layout.Clairvoyant && e.Future == nil {
		return errors.New("evict: the policy is clairvoyant, but this host gives no future attention")
	}
	if S > in.plan.ListCap {
		if err := in.fit(region.Caps{Heads: H, ListCap: S}); err != nil {
			return err
		}
	}
	r, p := in.region(), in.plan
	region.PutI32(r, region.Phase, int32(e.Phase))
	region.PutI32(r, region.Pos, int32(e.Pos))
	region.PutI32(r, region.Rows, 0)
	region.PutI32(r, region.Stride, int32(S))
	region.PutInts(r, p.Need, e.Need[:H])
	if in.major() >= 2 {
		region.PutI32(r, region.PoolNeed, int32(e.PoolNeed))
	}
	region.Zero(r, p.Count, 4*H)
	if in.layout.Clairvoyant {
		region.PutFloats(r, p.Future, e.Future[:H*S])
	}
	if err := in.callStatus(fnEvict); err != nil {
		return err
	}
	r = in.region()
	total := 0
	for h := 0; h < H; h++ {
		n := region.I32(r, p.Count+4*h)
		if n < 0 || int(n) > S {
			return fmt.Errorf("kvpolicy_evict: head %d: victim count %d out of range [0, %d]", h, n, S)
		}
		total += int(n)
	}
	if pooled && total < e.PoolNeed {
		return fmt.Errorf("kvpolicy_evict: %d victims in all, but the %v pool needs at least %d (pool_need): the policy overdraws its pool", total, in.layout.Pool, e.PoolNeed)
	}
	for h := 0; h < H; h++ {
		n := int(region.I32(r, p.Count+4*h))
		region.Ints(e.Victims[h*S:h*S+n], r, p.Victims+4*h*S)
		if comp {
			region.Floats(e.Weights[h*S:h*S+n], r, p.Weights+4*h*S)
		}
		e.Count[h] = int32(n)
	}
	return nil
}

// wrapper is what New hands out: a type that embeds *instance.
type wrapper interface{ self() *instance }

func (in *instance) self() *instance { return in }

// forkTo hands the prompt's state to dst (ABI.md §5.3): kvpolicy_fork_save here,
// a copy of the state from this instance's memory into dst's region, and
// kvpolicy_fork_load there.
func (in *instance) forkTo(dst policies.Policy) error {
	var to *instance
	if d, ok := dst.(wrapper); ok {
		to = d.self()
	}
	switch {
	case to == nil || to.m != in.m || to == in:
		return fmt.Errorf("fork: the destination is not another instance of this module")
	case in.cfg.Heads == 0 || to.cfg.Heads != in.cfg.Heads:
		return fmt.Errorf("fork: source and destination are not initialized for the same sequence")
	}
	r := in.region()
	region.PutU32(r, region.ForkPtr, 0)
	region.PutU32(r, region.ForkLen, 0)
	if err := in.callStatus(fnForkSave); err != nil {
		return err
	}
	r = in.region()
	ptr, n := uint64(region.U32(r, region.ForkPtr)), uint64(region.U32(r, region.ForkLen))
	if ptr+n > uint64(len(in.view)) {
		return fmt.Errorf("%s: the state at [%d, %d) is outside guest memory (%d bytes)", exportNames[fnForkSave], ptr, ptr+n, len(in.view))
	}
	if int(n) > to.plan.ForkCap {
		if err := to.fit(region.Caps{Heads: to.cfg.Heads, ForkCap: int(n)}); err != nil {
			return fmt.Errorf("fork: %w", err)
		}
	}
	r = to.region()
	copy(r[to.plan.Fork:], in.view[ptr:ptr+n])
	region.PutU32(r, region.ForkOff, uint32(to.plan.Fork))
	region.PutU32(r, region.ForkLen, uint32(n))
	if err := to.callStatus(fnForkLoad); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	return nil
}

// layerBudgets calls kvpolicy_layer_budgets with cfg in the header, then puts the
// Init config back, and checks the entries against the model pool.
func (in *instance) layerBudgets(cfg policies.Config, entries []int) error {
	if in.cfg.Heads == 0 {
		return errors.New("layer budgets before a successful init")
	}
	L := cfg.Layers
	if L < 1 || len(entries) != L {
		return fmt.Errorf("layer budgets: %d entries for a config of %d layers", len(entries), L)
	}
	if L > in.plan.BudgetsCap {
		if err := in.fit(region.Caps{Heads: in.cfg.Heads, BudgetsCap: L}); err != nil {
			return err
		}
	}
	in.writeConfig(cfg)
	region.Zero(in.region(), in.plan.Budgets, 4*L)
	err := in.callStatus(fnLayerBudgets)
	if in.broken == nil {
		in.writeConfig(in.cfg) // observe and evict go on with the sequence's config
	}
	if err != nil {
		return err
	}
	r := in.region()
	pool := int64(L) * int64(cfg.Heads) * int64(cfg.Budget)
	var sum int64
	for l := range L {
		n := region.I32(r, in.plan.Budgets+4*l)
		if n < 0 {
			return fmt.Errorf("%s: layer %d gets %d tokens: want ≥ 0", exportNames[fnLayerBudgets], l, n)
		}
		sum += int64(n)
		entries[l] = int(n)
	}
	if sum > pool {
		return fmt.Errorf("%s: the layers get %d tokens in all, over the model pool of %d layers × %d heads × budget %d = %d",
			exportNames[fnLayerBudgets], sum, L, cfg.Heads, cfg.Budget, pool)
	}
	return nil
}

// outputTail keeps the start of what a guest prints (a Go guest prints its fatal
// errors), so that an exit can say why.
type outputTail struct {
	mu  sync.Mutex
	buf []byte
}

const outputKeep = 4096

func (o *outputTail) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := outputKeep - len(o.buf); room > 0 {
		o.buf = append(o.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// summary is the first two non-empty lines printed, on one line.
func (o *outputTail) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(o.buf), "\n") {
		if l = strings.TrimSpace(l); l != "" && len(lines) < 2 {
			lines = append(lines, printable(l))
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
