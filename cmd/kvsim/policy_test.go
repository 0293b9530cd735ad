package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPolicyCheckOfALoopingModule: `kvsim policy check` of a module whose observe
// never returns finishes, each replay row and the call-by-call check failing on
// its fuel, and says so. It runs
// in a child process, so that a hang is killed rather than waited for.
func TestPolicyCheckOfALoopingModule(t *testing.T) {
	if os.Getenv("KVSIM_POLICY_CHECK_CHILD") != "" {
		var out bytes.Buffer
		err := runPolicyCheck(context.Background(), &env{stdout: &out, stderr: &out}, []string{"-fuel", "1000000", os.Getenv("MODULE")})
		os.Stdout.Write(out.Bytes())
		if err == nil || err.Error() != "policy check: 5 check(s) failed" {
			t.Errorf("got %v, want 5 failed checks (params, the three replays and contract 2.0)", err)
		}
		return
	}
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not found: install it to run this test (Debian/Ubuntu: apt-get install -y wabt)")
	}
	module := filepath.Join(t.TempDir(), "loop.wasm")
	build, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(build, "wat2wasm", "../../abi/testdata/bad/loop.wat", "-o", module).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPolicyCheckOfALoopingModule$", "-test.v")
	cmd.Env = append(os.Environ(), "KVSIM_POLICY_CHECK_CHILD=1", "MODULE="+module)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("policy check still running after 3 minutes, killed:\n%s", out)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "kvpolicy_observe: fuel exhausted: more than 1000000 units of work in one call (limits.fuel) (in $4() i32)"
	if n := strings.Count(string(out), want); n != 4 {
		t.Errorf("%d failed checks name the fuel, want 4 (replay, two small ones and contract 2.0):\n%s", n, out)
	}
}
