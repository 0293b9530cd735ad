package meter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// wat compiles WebAssembly text with wabt's wat2wasm.
func wat(t *testing.T, src string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not found: install wabt to run this test (Debian/Ubuntu: apt-get install -y wabt)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "wat2wasm", "--debug-names", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// counter is a host whose tick refills the fuel with chunk units and counts what the
// guest used; after limit units it stops the guest.
type counter struct {
	chunk, limit, used, given int64
	ticks                     int
}

var errSpent = errors.New("spent")

func (c *counter) tick(_ context.Context, stack []uint64) {
	c.ticks++
	c.used += c.given - int64(stack[0])
	if c.used > c.limit {
		panic(errSpent)
	}
	c.given = min(c.chunk, c.limit-c.used)
	stack[0] = uint64(c.given)
}

// instantiate runs the metered module with the counter as its tick and env.double as
// an import for the modules that want one.
func instantiate(t *testing.T, bin []byte, c *counter) (api.Module, error) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(c.tick), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).
		Export(ImportName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoFunction(api.GoFunc(func(_ context.Context, s []uint64) { s[0] *= 2 }), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("double").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
}

// used is what the call consumed: the ticks' count plus what is left of the last
// refill.
func used(mod api.Module, c *counter) int64 {
	return c.used + c.given - int64(mod.ExportedGlobal(FuelExport).Get())
}

// counted: a start function, an imported function, calls through a table and
// ref.func, and bulk memory. Every function index after the import shifts.
const counted = `(module
  (import "env" "double" (func $double (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $started (mut i32) (i32.const 0))
  (global $ref funcref (ref.func $inc))
  (table 2 funcref)
  (elem (i32.const 0) $inc $sum)
  (type $unary (func (param i32) (result i32)))
  (func $inc (type $unary) (i32.add (local.get 0) (i32.const 1)))
  ;; sum(n): 0 + 1 + ... + n-1, in a loop of n iterations.
  (func $sum (type $unary) (local $i i32) (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get 0)))
        (local.set $s (i32.add (local.get $s) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $s))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "sum") (param i32) (result i32)
    (call_indirect (type $unary) (local.get 0) (i32.const 1)))
  (func (export "inc_double") (param i32) (result i32)
    (call $double (call_indirect (type $unary) (local.get 0) (i32.const 0))))
  (func (export "fill") (param i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get 0)))
  (func (export "started") (result i32) (global.get $started))
  (func $start (global.set $started (i32.const 42)))
  (start $start)
)`

// TestUnitsCounted: the fuel a call uses, counted by hand, and the module behaves as
// before the rewrite.
func TestUnitsCounted(t *testing.T) {
	bin, err := Instrument(wat(t, counted))
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{chunk: 7, limit: 1 << 40}
	mod, err := instantiate(t, bin, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := used(mod, c); got != 1 {
		t.Errorf("start used %d units, want 1 (its entry)", got)
	}
	for _, tc := range []struct {
		fn   string
		arg  uint64
		want uint64
		fuel int64
	}{
		// fib(n) makes fib(n+1)*2-1 entries into $fib (fib(11) = 89).
		{"fib", 10, 55, 177},
		// The export's entry, then $sum's 100 iterations and the exit's pass through
		// the loop head: 1 + 101. $sum starts with its loop (after a block), whose
		// charge pays for the entry.
		{"sum", 100, 4950, 102},
		{"inc_double", 20, 42, 2},
		// 1000 bytes cost 1000 >> 8 = 3 units, on top of the entry.
		{"fill", 1000, 0, 4},
		{"started", 0, 42, 1},
	} {
		c.used, c.given = 0, 0
		mod.ExportedGlobal(FuelExport).(api.MutableGlobal).Set(0)
		f := mod.ExportedFunction(tc.fn)
		args := []uint64{tc.arg}[:len(f.Definition().ParamTypes())]
		res, err := f.Call(context.Background(), args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.fn, err)
		}
		if len(res) > 0 && res[0] != tc.want {
			t.Errorf("%s(%d) = %d, want %d", tc.fn, tc.arg, res[0], tc.want)
		}
		if got := used(mod, c); got != tc.fuel {
			t.Errorf("%s(%d) used %d units, want %d", tc.fn, tc.arg, got, tc.fuel)
		}
	}
	if m, _ := mod.Memory().Read(999, 2); !bytes.Equal(m, []byte{7, 0}) {
		t.Errorf("memory.fill wrote %v around byte 1000", m)
	}
}

// TestBudgetStops: a loop that never ends, a recursion that never returns, and a
// start function that loops all end when the host's budget is spent.
func TestBudgetStops(t *testing.T) {
	for name, src := range map[string]string{
		"loop":      `(module (func (export "run") (loop $l (br $l))))`,
		"recursion": `(module (func $f (export "run") (call $f) (call $f)))`,
		// The loop comes first and pays for the entry: the recursion is still charged.
		"loop-first": `(module (func $f (export "run") (loop $l (call $f) (call $f))))`,
		"start":      `(module (func $s (loop $l (br $l))) (func (export "run")) (start $s))`,
	} {
		bin, err := Instrument(wat(t, src))
		if err != nil {
			t.Fatal(err)
		}
		c := &counter{chunk: 1000, limit: 100000}
		mod, err := instantiate(t, bin, c)
		if err == nil {
			_, err = mod.ExportedFunction("run").Call(context.Background())
		}
		if !errors.Is(err, errSpent) && (err == nil || !bytes.Contains([]byte(err.Error()), []byte("spent"))) {
			t.Errorf("%s: got %v, want the budget spent", name, err)
		}
		// The recursion may hit the stack limit first; the others spend it exactly.
		if name != "recursion" && name != "loop-first" && c.used != c.limit+1 {
			t.Errorf("%s: stopped after %d units, want %d", name, c.used, c.limit+1)
		}
	}
}

// module assembles a binary from sections (id, body).
func module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s[0])
		out = append(out, leb(uint32(len(s)-1))...)
		out = append(out, s[1:]...)
	}
	return out
}

var (
	typeVoid = []byte{1, 1, 0x60, 0, 0} // one type: () -> ()
	funcs1   = []byte{3, 1, 0}          // one function of type 0
)

func code(body ...byte) []byte {
	fn := append([]byte{0}, body...) // no locals
	return append([]byte{10, 1}, append(leb(uint32(len(fn))), fn...)...)
}

// TestMinimalModule: a module with only a function gets the import, the globals and
// the export, in order, and a check at its loop, which comes first.
func TestMinimalModule(t *testing.T) {
	bin := module(typeVoid, funcs1, code(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)) // loop br 0 end
	out, err := Instrument(bin)
	if err != nil {
		t.Fatal(err)
	}
	var r rewriter
	r.tick, r.fuel = 0, 0
	if n := bytes.Count(out, r.charge(nil)); n != 1 {
		t.Errorf("%d charges, want 2 (entry and loop)", n)
	}
	mod, err := instantiate(t, out, &counter{chunk: 10, limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mod.ExportedGlobal(FuelExport).(api.MutableGlobal); !ok {
		t.Error("the fuel global is not exported, or not mutable")
	}
}

func TestRefusals(t *testing.T) {
	export := []byte{7, 1, 9, '_', '_', 'k', 'v', 's', 'i', 'm', '_', 'x', 0, 0} // function 0 as "__kvsim_x"
	imp := append([]byte{2, 1}, append(name(ImportModule), 1, 'f', 0, 0)...)
	for _, tc := range []struct {
		bin  []byte
		want string
	}{
		{[]byte("\x00asm\x02\x00\x00\x00"), "not a WebAssembly 1.0 binary"},
		{module(typeVoid, funcs1, code(0xfb, 0x00, 0x0b)), "section 10: function 0: at byte 1: unknown opcode 0xfb"},
		{module(typeVoid, funcs1, export, code(0x0b)), `section 7: the module exports "__kvsim_x": names starting with __kvsim are reserved for the host`},
		{module(typeVoid, imp, funcs1, code(0x0b)), `section 2: the module imports from "__kvsim": names starting with __kvsim are reserved for the host`},
		{module(typeVoid, funcs1, code(0x41)), "section 10: function 0: at byte 1: truncated"},
		// Counts that would make wazero allocate gigabytes for a few bytes.
		{module(typeVoid, []byte{3, 0xff, 0xff, 0xff, 0xff, 0x0f}), "section 3: a vector of 4294967295 entries in 0 bytes"},
		{module([]byte{5, 2, 0, 1, 0, 1}), "section 5: 2 entries, more than the 1 a module may have"},
		{module([]byte{11, 0xcb, 0xff, 0xff, 0x30}), "section 11: a vector of 102760395 entries in 0 bytes"},
		{module([]byte{11, 1, 1, 0xff, 0xff, 0xff, 0x0f}), "section 11: data segment 0: 33554431 bytes, past the section's end"},
		{module(typeVoid, funcs1, []byte{10, 1, 7, 1, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b}), "section 10: function 0: more than 50000 locals"},
	} {
		if _, err := Instrument(tc.bin); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

// FuzzInstrument: no input panics the rewriter, and whatever it accepts from a valid
// module stays valid.
func FuzzInstrument(f *testing.F) {
	f.Add(module(typeVoid, funcs1, code(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)))
	f.Add(module(typeVoid, funcs1, code(0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0b, 0x00, 0x0b)))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x04\xcb\xff\xff\x30")) // a data section claiming 10^8 segments
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0c\x01\xd2"))             // a data count cut short
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := Instrument(bin)
		if err != nil {
			return
		}
		ctx := context.Background()
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		if _, err := r.CompileModule(ctx, bin); err != nil {
			return // the input was not valid to begin with
		}
		if _, err := r.CompileModule(ctx, out); err != nil {
			t.Errorf("a valid module became invalid: %v", err)
		}
	})
}
