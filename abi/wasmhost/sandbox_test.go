package wasmhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

// childEnv names the child a test binary runs instead of its tests. A child is bound
// by its parent's clock, which keeps running when the child's Go runtime is stuck.
const childEnv = "KVSIM_WASMHOST_CHILD"

var children = map[string]func() error{
	"loopers":   childLoopers,
	"load":      childLoad,
	"full-disk": childFullDisk,
}

func runChild(name string) {
	child, ok := children[name]
	if !ok {
		fmt.Printf("no child %q\n", name)
		os.Exit(2)
	}
	if err := child(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child runs the named child of this test binary with env, and kills it after bound.
func child(t *testing.T, name string, bound time.Duration, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+name), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("still running after %v, killed: it hangs", bound)
	}
	return string(out), err
}

// loopFuel is enough fuel for a looping guest to spend in some milliseconds.
const loopFuel = 20_000_000

// childLoopers runs $LOOPERS looping guests at once, spread over $MODULES (a loop in
// observe, a call tree, a loop in ABI 2.0's layer-budget call), while a goroutine
// forces garbage collections, for $ROUNDS rounds: every
// guest must stop with its fuel spent. Before guests reached Go safe points, a
// collection's stop-the-world waited for them forever.
func childLoopers() error {
	n, _ := strconv.Atoi(os.Getenv("LOOPERS"))
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	var mods []*Module
	for _, path := range strings.Split(os.Getenv("MODULES"), ",") {
		m, err := Load(context.Background(), path, Options{Fuel: loopFuel, CacheDir: "off"})
		if err != nil {
			return err
		}
		mods = append(mods, m)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	for round := range rounds {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				p, err := mods[i%len(mods)].New(policies.NewParams(nil))
				if err == nil {
					_, err = policytest.Run(p, policies.Config{Layers: 2, Budget: 2}, policytest.RandomSequence(1, 3, 4, 1))
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "fuel exhausted: more than 20000000 units of work in one call (limits.fuel)") {
				return fmt.Errorf("round %d, guest %d: got %v, want its fuel exhausted", round, i, err)
			}
		}
	}
	return nil
}

// TestLoopingGuestsUnderGC: more looping guests than Ps, at GOMAXPROCS 1 and 2,
// while the collector runs without pause, all stop on their fuel, round after round.
func TestLoopingGuestsUnderGC(t *testing.T) {
	mods := watModule(t, "../testdata/bad/loop.wat") + "," + watModule(t, "../testdata/bad/calltree.wat") + "," +
		watModule(t, "../testdata/bad/loop_budgets.wat")
	for _, procs := range []string{"1", "2"} {
		out, err := child(t, "loopers", 3*time.Minute, "GOMAXPROCS="+procs, "LOOPERS=5", "ROUNDS=4", "MODULES="+mods)
		if err != nil {
			t.Errorf("GOMAXPROCS=%s: %v\n%s", procs, err, out)
		}
	}
}

// TestLoadingStops: a start function or an _initialize that never returns fails the
// load, on fuel or, with fuel to spare, on the deadline.
func TestLoadingStops(t *testing.T) {
	for _, tc := range []struct {
		module string
		opts   Options
		want   string
	}{
		{"loop_start", Options{Fuel: loopFuel}, "instantiate: fuel exhausted: more than 20000000 units of work in one call (limits.fuel) (in $0())"},
		{"loop_initialize", Options{Fuel: loopFuel}, "_initialize: fuel exhausted: more than 20000000 units of work in one call (limits.fuel) (in $0())"},
		{"loop_start", Options{Fuel: 1 << 62, Deadline: 20 * time.Millisecond}, "instantiate: still running after the 20ms deadline (limits.deadline_ms, the wall-clock backstop), stopped"},
	} {
		path := watModule(t, "../testdata/bad/"+tc.module+".wat")
		_, err := Load(context.Background(), path, tc.opts)
		if want := "wasm policy " + path + ": " + tc.want; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s…", tc.module, err, want)
		}
	}
}

// TestDeadlineBackstop: with fuel to spare, a looping call stops on the deadline.
func TestDeadlineBackstop(t *testing.T) {
	path := watModule(t, "../testdata/bad/loop.wat")
	m := mustLoad(t, path, Options{Fuel: 1 << 62, Deadline: 20 * time.Millisecond})
	_, err := policytest.Run(mustNew(t, m.New, nil), policies.Config{Budget: 2}, policytest.RandomSequence(1, 3, 4, 1))
	want := "observe prefill row 0: " + path + ": kvpolicy_observe: still running after the 20ms deadline (limits.deadline_ms, the wall-clock backstop), stopped"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s…", err, want)
	}
}

// fuelTrace runs one sequence of the Go TOVA guest and returns the fuel of each call,
// and the first error.
func fuelTrace(m *Module) ([]int64, error) {
	p, err := m.New(policies.NewParams(nil))
	if err != nil {
		return nil, err
	}
	g := instanceOf(p).gauge
	var used []int64
	var callErr error
	rec := recorder{p, func(err error) {
		used = append(used, g.lastUsed)
		if callErr == nil {
			callErr = err
		}
	}}
	policytest.Run(rec, policies.Config{Budget: 16, Seed: 3}, policytest.RandomSequence(12, 512, 516, 5))
	return used, callErr
}

// recorder calls after with each call's error.
type recorder struct {
	policies.Policy
	after func(error)
}

func (r recorder) Init(c policies.Config) (policies.Layout, error) {
	l, err := r.Policy.Init(c)
	r.after(err)
	return l, err
}
func (r recorder) Observe(a *policies.Attention) error {
	err := r.Policy.Observe(a)
	r.after(err)
	return err
}
func (r recorder) Evict(e *policies.Eviction) error {
	err := r.Policy.Evict(e)
	r.after(err)
	return err
}

// LayerBudgets passes a model pool's division on (and records its call too).
func (r recorder) LayerBudgets(c policies.Config, entries []int) error {
	lb, ok := r.Policy.(policies.LayerBudgeter)
	if !ok {
		return fmt.Errorf("%T does not implement policies.LayerBudgeter", r.Policy)
	}
	err := lb.LayerBudgets(c, entries)
	r.after(err)
	return err
}

// TestFuelIsDeterministic: under load (spinning goroutines and forced collections),
// a guest uses the same fuel in every call of the same sequence, every time; with
// one unit less than its largest call, it fails at that call, every time.
func TestFuelIsDeterministic(t *testing.T) {
	path := goModule(t, "github.com/kvsim/kvsim/policies/tova")
	stop := make(chan struct{})
	defer close(stop)
	for i := range 2 { // one collects without pause, one spins
		go func() {
			for x := 0; ; x++ {
				select {
				case <-stop:
					return
				default:
				}
				if i == 0 {
					runtime.GC()
				}
			}
		}()
	}
	want, err := fuelTrace(mustLoad(t, path, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	big := slices.Max(want)
	first := slices.Index(want, big)
	if big < fuelChunk {
		t.Fatalf("the largest call used %d units, less than a chunk (%d): pick a heavier sequence", big, fuelChunk)
	}
	tight := mustLoad(t, path, Options{Fuel: big - 1})
	for run := range 2 {
		if got, err := fuelTrace(mustLoad(t, path, Options{})); err != nil || !slices.Equal(got, want) {
			t.Errorf("run %d: fuel %v, %v; want %v", run, got, err, want)
		}
		got, err := fuelTrace(tight)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("fuel exhausted: more than %d units", big-1)) || len(got) != first+1 {
			t.Errorf("run %d with %d units: failed at call %d of %d with %v; want call %d to exhaust its fuel", run, big-1, len(got)-1, len(want), err, first)
		}
	}
}

// instanceOf is the module instance behind a policy New made.
func instanceOf(p policies.Policy) *instance {
	if w, ok := p.(wrapper); ok {
		return w.self()
	}
	panic(fmt.Sprintf("%T is not a wasmhost policy", p))
}
