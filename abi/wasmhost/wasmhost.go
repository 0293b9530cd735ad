// Package wasmhost runs eviction policies compiled to WebAssembly behind the policy
// ABI v1 (abi/ABI.md), on wazero. A loaded Module makes policies.Policy instances,
// each its own sandboxed module instance, so a replay treats a .wasm policy like a
// builtin one.
//
// A guest cannot take its host down: every pointer, length and count it hands back is
// checked before the host reads guest memory, and a trap, an exit, a bad return value,
// memory past the page limit or a call past the deadline becomes an error that names
// the module and the export; the engine adds the policy, the call, the layer and the
// position.
//
// # Notes
//
//   - Guests get no host imports beyond kvpolicy.log, and WASI only if they import it
//     (Go's runtime does): no filesystem, no network, no environment, and wazero's
//     deterministic defaults for clocks and sleep. random_get reads a fixed stream.
//   - Compiled code is cached on disk (see Options.CacheDir), so a second run does not
//     recompile.
//   - The deadline costs a load and a branch per loop iteration: the host rewrites
//     the module (internal/loopcheck) so that every loop checks a global the
//     watchdog sets. It falls back on wazero's WithCloseOnContextDone, which costs
//     far more, only for modules it cannot rewrite.
//   - A policy instance belongs to one goroutine at a time, as policies.Policy asks.
//     Instances are closed when they become unreachable, or by Close.
package wasmhost

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/kvsim/kvsim/abi/internal/region"
	"github.com/kvsim/kvsim/abi/wasmhost/internal/loopcheck"
	"github.com/kvsim/kvsim/policies"
)

// Limits when Options leave them zero.
const (
	// DefaultMemoryPages is 256 MiB of guest memory, 64 KiB a page.
	DefaultMemoryPages = 4096
	// DefaultDeadline bounds one call into the guest.
	DefaultDeadline = time.Second
	// NoDeadline turns the deadline off, and with it the check at the head of every
	// guest loop.
	NoDeadline time.Duration = -1
)

// Options are a module's limits and plumbing. The zero value gives the defaults.
type Options struct {
	// MemoryPages caps each instance's linear memory, in 64 KiB pages; 0 means
	// DefaultMemoryPages. A module that declares a larger minimum fails to load.
	MemoryPages uint32
	// Deadline stops a call that runs longer, between Deadline and 1.5×Deadline after
	// it started; 0 means DefaultDeadline, NoDeadline none.
	Deadline time.Duration
	// CacheDir holds compiled code across runs. "" means $KVSIM_WASM_CACHE if set,
	// else kvsim/wazero under the user cache directory; "off" keeps it in memory.
	// Old entries are pruned when a process first uses the directory (see
	// pruneCache).
	CacheDir string
	// Log receives the lines guests write with kvpolicy.log, prefixed with the
	// module's name. Nil discards them.
	Log io.Writer
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
	deadline time.Duration
	// interrupt: the module carries loopcheck's stop global, which the watchdog sets.
	// Without it, a deadline falls back on wazero's WithCloseOnContextDone.
	interrupt bool
	rt        wazero.Runtime
	compiled  wazero.CompiledModule
	info      Info
}

// stopGlobal is the global loopcheck adds; the watchdog sets it to stop a call.
const stopGlobal = "__kvsim_stop"

// instrument is loopcheck.Instrument; tests replace it to exercise the fallback.
var instrument = loopcheck.Instrument

// Load reads, compiles and checks the module at path: its exports and imports, then
// its ABI version, from a first instance.
func Load(ctx context.Context, path string, opts Options) (*Module, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wasm policy: %w", err)
	}
	m, err := compile(ctx, path, bin, opts)
	if err != nil {
		return nil, fmt.Errorf("wasm policy %s: %w", path, err)
	}
	return m, nil
}

func compile(ctx context.Context, name string, bin []byte, opts Options) (*Module, error) {
	m := &Module{name: name, memPages: opts.MemoryPages, deadline: opts.Deadline}
	if m.memPages == 0 {
		m.memPages = DefaultMemoryPages
	}
	if m.memPages > 65536 {
		return nil, fmt.Errorf("memory limit of %d pages is over wasm32's 65536", m.memPages)
	}
	if m.deadline == 0 {
		m.deadline = DefaultDeadline
	}
	cache, err := compilationCache(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	if m.deadline > 0 {
		if checked, err := instrument(bin, stopGlobal); err == nil {
			bin, m.interrupt = checked, true
		}
	}
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(m.memPages).
		WithCloseOnContextDone(m.deadline > 0 && !m.interrupt)
	m.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	ok := false
	defer func() {
		if !ok {
			m.rt.Close(ctx)
		}
	}()
	m.compiled, err = m.rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), bin)
	if err != nil {
		return nil, err
	}
	if m.info, err = checkModule(m.compiled); err != nil {
		return nil, err
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
	if m.info.ABIMajor != region.Major {
		return fmt.Errorf("policy ABI version %d.%d, but this kvsim speaks %d.x: rebuild the policy against the kvpolicy.h or abi/guest of this kvsim (see abi/ABI.md, Versioning)",
			m.info.ABIMajor, m.info.ABIMinor, region.Major)
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
	pol := &policy{in}
	runtime.AddCleanup(pol, func(in *instance) { in.close() }, in)
	return pol, nil
}

// policy is what New hands out. The cleanup that closes the instance hangs on it, and
// nothing the instance holds points back at it.
type policy struct{ *instance }

var (
	cachesMu sync.Mutex
	caches   = map[string]wazero.CompilationCache{}
)

// compilationCache returns the process-wide cache for dir (resolved as
// Options.CacheDir says), so that runtimes share compiled code too.
func compilationCache(dir string) (wazero.CompilationCache, error) {
	explicit := true
	if dir == "" {
		dir = os.Getenv("KVSIM_WASM_CACHE")
	}
	if dir == "" {
		explicit = false
		if base, err := os.UserCacheDir(); err == nil {
			dir = base + string(os.PathSeparator) + "kvsim" + string(os.PathSeparator) + "wazero"
		} else {
			dir = "off"
		}
	}
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if c, ok := caches[dir]; ok {
		return c, nil
	}
	var c wazero.CompilationCache
	if dir == "off" {
		c = wazero.NewCompilationCache()
	} else {
		var err error
		pruneCache(dir, time.Now())
		if c, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
			if explicit {
				return nil, fmt.Errorf("compilation cache: %w", err)
			}
			c = wazero.NewCompilationCache() // an unwritable home still runs policies
		}
	}
	caches[dir] = c
	return c, nil
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

// printable makes guest text safe for one line of a table or a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// deterministicRand is what random_get reads: the same bytes in every instance.
func deterministicRand() io.Reader {
	return rand.NewChaCha8([32]byte([]byte("kvsim policy ABI v1 random_get!!")))
}
