package loopcheck

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func wat(t *testing.T, src string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not found: install wabt to run this test (Debian/Ubuntu: apt-get install -y wabt)")
	}
	out := filepath.Join(t.TempDir(), "m.wasm")
	if b, err := exec.Command("wat2wasm", src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", src, err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// check is the sequence Instrument puts at the head of a loop, for global g < 128.
func check(g byte) []byte { return []byte{0x23, g, 0x04, 0x40, 0x00, 0x0b} }

// TestEveryLoopIsChecked: the window example has six loops; each gets one check of
// the new global (index 6, after the module's six), and the module stays valid.
func TestEveryLoopIsChecked(t *testing.T) {
	bin := wat(t, "../../../../examples/policies/wat/window.wat")
	out, err := Instrument(bin, "stop")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, check(6)); n != 6 {
		t.Errorf("%d checks, want one per loop (6)", n)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	c, err := r.CompileModule(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.ExportedFunctions()["kvpolicy_evict"]; !ok {
		t.Error("an export went missing")
	}
}

// TestStop: setting the global from another goroutine ends a loop that never would.
func TestStop(t *testing.T) {
	out, err := Instrument(wat(t, "../../../testdata/bad/loop.wat"), "stop")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	stop := mod.ExportedGlobal("stop").(api.MutableGlobal)
	go func() {
		time.Sleep(10 * time.Millisecond)
		stop.Set(1)
	}()
	_, err = mod.ExportedFunction("kvpolicy_observe").Call(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "wasm error: unreachable") {
		t.Errorf("got %v, want a trap", err)
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

// TestMinimalModule: a module with no global or export section gets both, in order.
func TestMinimalModule(t *testing.T) {
	bin := module(typeVoid, funcs1, code(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)) // loop br 0 end
	out, err := Instrument(bin, "stop")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mod.ExportedGlobal("stop").(api.MutableGlobal); !ok {
		t.Error("the stop global is not exported, or not mutable")
	}
	if !bytes.Contains(out, append([]byte{0x03, 0x40}, check(0)...)) {
		t.Error("the loop has no check")
	}
}

func TestRefusals(t *testing.T) {
	export := []byte{7, 1, 4, 's', 't', 'o', 'p', 0, 0} // exports function 0 as "stop"
	for _, tc := range []struct {
		bin  []byte
		want string
	}{
		{[]byte("\x00asm\x02\x00\x00\x00"), "not a WebAssembly 1.0 binary"},
		{module(typeVoid, funcs1, code(0xfb, 0x00, 0x0b)), "code section: function 0: at byte 1: unknown opcode 0xfb"},
		{module(typeVoid, funcs1, export, code(0x0b)), `section 7: the module already exports "stop"`},
		{module(typeVoid, funcs1, code(0x41)), "code section: function 0: at byte 1: truncated"},
	} {
		if _, err := Instrument(tc.bin, "stop"); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}
