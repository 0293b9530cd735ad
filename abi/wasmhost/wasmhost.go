// Package wasmhost runs eviction policies compiled to WebAssembly behind the policy
// ABI (abi/ABI.md), on wazero: version 2.0, and 1.x for modules built against it. A
// loaded Module makes policies.Policy instances, each its own sandboxed module
// instance, so a replay treats a .wasm policy like a builtin one.
//
// A guest cannot take its host down: every pointer, length and count it hands back is
// checked before the host reads guest memory, and a trap, an exit, a bad return value,
// memory past the page limit, work past the fuel budget or a call past the deadline
// becomes an error that names the module and the export; the engine adds the policy,
// the call, the layer and the position.
//
// # Notes
//
//   - Work is metered (internal/meter): every function entry and loop iteration costs
//     a unit of fuel, and a call that uses more than its budget (Options.Fuel) traps,
//     the same way on every machine and under any load. The guest calls back into Go
//     every fuelChunk units, which is where the budget is charged, the wall-clock
//     deadline (a backstop) is checked, and where the scheduler and the garbage
//     collector get the goroutine back: compiled wasm code cannot be preempted.
//   - Guests get no host imports beyond kvpolicy.log, and WASI only if they import it
//     (Go's runtime does): no filesystem, no network, no environment, and wazero's
//     deterministic defaults for clocks and sleep. random_get reads a fixed stream.
//   - Compiled code is cached on disk (see Options.CacheDir and cache.go), so a
//     second run does not recompile.
//   - A policy instance belongs to one goroutine at a time, as policies.Policy asks.
//     Instances are closed when they become unreachable, or by Close.
package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/kvsim/kvsim/abi/internal/region"
	"github.com/kvsim/kvsim/abi/wasmhost/internal/meter"
	"github.com/kvsim/kvsim/policies"
)

// Limits when Options leave them zero.
const (
	// DefaultMemoryPages is 256 MiB of guest memory, 64 KiB a page.
	DefaultMemoryPages = 4096
	// DefaultFuel bounds the work of one call: function entries plus loop iterations
	// (plus bulk memory bytes / 256). Built to WASM, at OPT-13B's shape (40 heads, a
	// 2032-token prompt; BenchmarkBuiltinFuel), h2o uses at most 3.2 million in one
	// call, keydiff 30 million, and the heaviest builtin, expectedattention (a full
	// key covariance per head at compression), 1.37 billion; a naive O(k·n)
	// compression of 72 heads of 2048 tokens takes 0.3 billion. A guest that loops
	// spends it in about a second, one that recurses in tens of seconds.
	DefaultFuel = 2_000_000_000
	// DefaultDeadline is the wall-clock backstop of one call. Fuel is the rule; the
	// deadline is well above what DefaultFuel takes even on a loaded machine, and
	// catches what a unit of fuel cannot bound: a unit pays for one function entry
	// or loop iteration, which is at most one function body of straight-line code.
	DefaultDeadline = 5 * time.Minute
	// NoDeadline turns the deadline off; fuel still bounds every call.
	NoDeadline time.Duration = -1
	// Unmetered turns metering off: no fuel, no deadline, and a guest that loops
	// hangs its goroutine and, at the next garbage collection, the process. It exists
	// to measure what metering costs (the abi benchmarks); never run untrusted
	// modules so.
	Unmetered int64 = -1
	// MaxModuleBytes caps the size of a module file.
	MaxModuleBytes = 256 << 20
)

// fuelChunk is how much fuel the guest spends between two calls into Go: the most
// work, give or take one function body, that it runs without a Go safe point.
const fuelChunk = 1 << 16

// Options are a module's limits and plumbing. The zero value gives the defaults.
type Options struct {
	// MemoryPages caps each instance's linear memory, in 64 KiB pages; 0 means
	// DefaultMemoryPages. A module that declares a larger minimum fails to load.
	MemoryPages uint32
	// Fuel bounds each call's work (see DefaultFuel); 0 means DefaultFuel. Each of
	// instantiation (with the module's start function) and _initialize is a call.
	Fuel int64
	// Deadline stops a call still running this long after it started, within one
	// fuelChunk of work; 0 means DefaultDeadline, NoDeadline none.
	Deadline time.Duration
	// CacheDir holds compiled code across runs. "" means $KVSIM_WASM_CACHE if set,
	// else kvsim/wazero under the user cache directory; "off" keeps it in memory.
	// See cache.go for what kvsim checks and prunes there.
	CacheDir string
	// Log receives the lines guests write with kvpolicy.log, prefixed with the
	// module's name. Nil discards them.
	Log io.Writer
	// Warn receives warnings about the compilation cache; nil means os.Stderr.
	Warn io.Writer
}

// Info describes a loaded module.
type Info struct {
	ABIMajor, ABIMinor int
	WASI               bool // imports wasi_snapshot_preview1
	Log                bool // imports kvpolicy.log
}

// Module is a compiled, checked policy module.
type Module struct {
	name     string
	memPages uint32
	fuel     int64 // per call; Unmetered: the module runs as it came
	deadline time.Duration
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	info     Info
}

// Load reads, meters, compiles and checks the module at path: its exports and
// imports, then its ABI version, from a first instance.
func Load(ctx context.Context, path string, opts Options) (*Module, error) {
	bin, err := readModule(path)
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return nil, fmt.Errorf("wasm policy: %w", err) // it names the file
	} else if err != nil {
		return nil, fmt.Errorf("wasm policy %s: %w", path, err)
	}
	m, err := compile(ctx, path, bin, opts)
	if err != nil {
		return nil, fmt.Errorf("wasm policy %s: %w", path, err)
	}
	return m, nil
}

// readModule reads a regular file of at most MaxModuleBytes.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s, not a regular file: a module must be a .wasm file", fileKind(info.Mode()))
	}
	if info.Size() > MaxModuleBytes {
		return nil, fmt.Errorf("%d bytes, over the %d MiB a module may have", info.Size(), MaxModuleBytes>>20)
	}
	bin, err := io.ReadAll(io.LimitReader(f, MaxModuleBytes+1))
	if err == nil && len(bin) > MaxModuleBytes {
		err = fmt.Errorf("over the %d MiB a module may have", MaxModuleBytes>>20)
	}
	return bin, err
}

// fileKind names what a file that is not regular is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

func compile(ctx context.Context, name string, bin []byte, opts Options) (*Module, error) {
	m := &Module{name: name, memPages: opts.MemoryPages, fuel: opts.Fuel, deadline: opts.Deadline}
	if m.memPages == 0 {
		m.memPages = DefaultMemoryPages
	}
	if m.memPages > 65536 {
		return nil, fmt.Errorf("memory limit of %d pages is over wasm32's 65536", m.memPages)
	}
	switch {
	case m.fuel == 0:
		m.fuel = DefaultFuel
	case m.fuel < 0 && m.fuel != Unmetered:
		return nil, fmt.Errorf("fuel %d: want a positive number of units", m.fuel)
	}
	if m.deadline == 0 {
		m.deadline = DefaultDeadline
	}
	// The rewrite also checks every count the module declares, which wazero would
	// allocate for before reading: unmetered modules go through it too.
	metered, err := meter.Instrument(bin)
	if errors.Is(err, meter.ErrReserved) {
		return nil, fmt.Errorf("%w (abi/ABI.md §2)", err)
	} else if err != nil {
		return nil, fmt.Errorf("cannot meter the module: %w", err)
	}
	if m.fuel != Unmetered {
		bin = metered
	}
	warn := opts.Warn
	if warn == nil {
		warn = os.Stderr
	}
	m.rt, m.compiled, err = compileCached(ctx, opts.CacheDir, bin, m.memPages, warn)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.rt.Close(ctx)
		}
	}()
	if m.info, err = checkModule(m.compiled, m.fuel != Unmetered); err != nil {
		return nil, err
	}
	if m.fuel != Unmetered {
		if err := instantiateTick(ctx, m.rt); err != nil {
			return nil, err
		}
	}
	if m.info.WASI {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
			return nil, err
		}
	}
	if m.info.Log {
		if err := instantiateLog(ctx, m.rt, name, opts.Log); err != nil {
			return nil, err
		}
	}
	if err := m.checkVersion(ctx); err != nil {
		return nil, err
	}
	ok = true
	runtime.AddCleanup(m, func(rt wazero.Runtime) { rt.Close(context.Background()) }, m.rt)
	return m, nil
}

// newRuntime makes a runtime with the memory cap, and compiles bin in it.
func newRuntime(ctx context.Context, cache wazero.CompilationCache, bin []byte, memPages uint32) (wazero.Runtime, wazero.CompiledModule, error) {
	cfg := wazero.NewRuntimeConfig().WithCompilationCache(cache).WithMemoryLimitPages(memPages)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	compiled, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), bin)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return rt, compiled, nil
}

// checkVersion instantiates the module once and asks its ABI version.
func (m *Module) checkVersion(ctx context.Context) error {
	in, err := m.instantiate(ctx)
	if err != nil {
		return err
	}
	defer in.close()
	v, err := in.call(fnVersion, 0)
	if err != nil {
		return err
	}
	m.info.ABIMajor, m.info.ABIMinor = int(uint32(v)>>16), int(uint32(v)&0xffff)
	if m.info.ABIMajor != region.Major && m.info.ABIMajor != 1 {
		return fmt.Errorf("policy ABI version %d.%d, but this kvsim speaks %d.x and 1.x: rebuild the policy against the kvpolicy.h or abi/guest of this kvsim (see abi/ABI.md, Versioning)",
			m.info.ABIMajor, m.info.ABIMinor, region.Major)
	}
	if m.info.ABIMajor >= 2 {
		return checkExports2(m.compiled)
	}
	return nil
}

// Info describes the module.
func (m *Module) Info() Info { return m.info }

// Name is the path the module was loaded from.
func (m *Module) Name() string { return m.name }

// Close releases the module's compiled code and every instance still open.
func (m *Module) Close() error { return m.rt.Close(context.Background()) }

// New makes a policy instance: a fresh module instance, given params as JSON. It has
// the signature of policies.New. The instance also implements io.Closer, for hosts
// that know when they are done with it; otherwise it is closed once unreachable.
func (m *Module) New(p *policies.Params) (policies.Policy, error) {
	js, err := p.JSON()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	in, err := m.instantiate(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	if err := in.create(js); err != nil {
		in.close()
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	budgets := in.fns[fnLayerBudgets] != nil && m.info.ABIMajor >= 2
	switch {
	case budgets && in.canFork:
		return closing(&budgetForker{in}, in), nil
	case budgets:
		return closing(&budgeter{in}, in), nil
	case in.canFork:
		return closing(&forker{in}, in), nil
	}
	return closing(&policy{in}, in), nil
}

// closing hangs the cleanup that closes the instance on pol, what New hands out;
// nothing the instance holds points back at it.
func closing[T any](pol *T, in *instance) *T {
	runtime.AddCleanup(pol, func(in *instance) { in.close() }, in)
	return pol
}

// policy is what New hands out for a module without optional hooks.
type policy struct{ *instance }

// budgeter is what New hands out for a module that exports kvpolicy_layer_budgets: a
// policy that is also a policies.LayerBudgeter.
type budgeter struct{ *instance }

// LayerBudgets calls kvpolicy_layer_budgets with cfg and checks what it returns.
func (b *budgeter) LayerBudgets(cfg policies.Config, entries []int) error {
	return b.named(b.layerBudgets(cfg, entries))
}

// forker is what New hands out for an instance that offers FORK (ABI 2.1): a policy
// that is also a policies.Forker.
type forker struct{ *instance }

// ForkTo hands the prompt's state to dst, another instance of the same module.
func (f *forker) ForkTo(dst policies.Policy) error { return f.named(f.forkTo(dst)) }

// budgetForker is a budgeter that offers FORK.
type budgetForker struct{ *instance }

func (b *budgetForker) LayerBudgets(cfg policies.Config, entries []int) error {
	return b.named(b.layerBudgets(cfg, entries))
}

func (b *budgetForker) ForkTo(dst policies.Policy) error { return b.named(b.forkTo(dst)) }

// gauge is an instance's fuel account. The tick, called from the guest, finds it in
// the context of the call.
type gauge struct {
	budget   int64         // per call
	deadline time.Duration // <= 0: none
	used     int64         // this call's fuel, up to the last refill
	given    int64         // what the fuel global was last set to
	started  time.Time     // when the call's first tick came; zero before it
	// exhausted and late say why the last tick stopped the call.
	exhausted, late bool
	// lastUsed is the fuel the last finished call used.
	lastUsed int64
}

type gaugeKey struct{}

// errStopped is what the tick panics with; wazero turns it into the call's error, and
// describe reads the gauge for the reason.
var errStopped = errors.New("stopped by the host")

// begin starts a call with the fuel global set to give.
func (g *gauge) begin(give int64) {
	g.used, g.given, g.started, g.exhausted, g.late = 0, give, time.Time{}, false, false
}

// end adds what is left of the last refill, left being the fuel global now.
func (g *gauge) end(left int64) {
	g.used += g.given - left
	g.given = left
	g.lastUsed = g.used
}

// tick charges the chunk the guest has spent, stops the call when the budget is
// spent or the deadline has passed, and returns the next chunk.
func (g *gauge) tick(left int64) int64 {
	g.used += g.given - left
	if g.used > g.budget {
		g.exhausted = true
		panic(errStopped)
	}
	if g.deadline > 0 {
		if g.started.IsZero() {
			g.started = time.Now()
		} else if time.Since(g.started) > g.deadline {
			g.late = true
			panic(errStopped)
		}
	}
	g.given = min(fuelChunk, g.budget-g.used)
	return g.given
}

// instantiateTick provides the meter's import: __kvsim.tick(fuel i64) -> i64.
func instantiateTick(ctx context.Context, rt wazero.Runtime) error {
	tick := func(ctx context.Context, stack []uint64) {
		g, _ := ctx.Value(gaugeKey{}).(*gauge)
		if g == nil {
			panic(errors.New("kvsim: a metered call without a gauge"))
		}
		stack[0] = uint64(g.tick(int64(stack[0])))
	}
	_, err := rt.NewHostModuleBuilder(meter.ImportModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(tick), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).
		WithParameterNames("fuel").
		Export(meter.ImportName).
		Instantiate(ctx)
	return err
}

// instantiateLog provides kvpolicy.log(ptr, len): one line to w per call.
func instantiateLog(ctx context.Context, rt wazero.Runtime, name string, w io.Writer) error {
	var mu sync.Mutex
	logLine := func(_ context.Context, mod api.Module, stack []uint64) {
		ptr, n := uint32(stack[0]), uint32(stack[1])
		msg, ok := mod.Memory().Read(ptr, min(n, region.MaxErrLen))
		if !ok {
			// A panic in a host function fails the guest's call with this message.
			panic(fmt.Errorf("kvpolicy.log: message at [%d, %d+%d) is outside guest memory", ptr, ptr, n))
		}
		if w == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "[%s] %s\n", name, printable(string(msg)))
	}
	_, err := rt.NewHostModuleBuilder("kvpolicy").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(logLine), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("ptr", "len").
		Export("log").
		Instantiate(ctx)
	return err
}

// printable makes guest text safe for one line of a table or a terminal: C0 and C1
// controls become spaces, and bidirectional controls (U+202E and kin), which could
// make the rest of the line read backwards, are dropped.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return ' '
		case unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// deterministicRand is what random_get reads: the same bytes in every instance.
func deterministicRand() io.Reader {
	return rand.NewChaCha8([32]byte([]byte("kvsim policy ABI v1 random_get!!")))
}
