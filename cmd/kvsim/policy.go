package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvsim/kvsim/abi/conformance"
	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/abi/plugin"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
)

const policyUsage = `Usage: kvsim policy <subcommand> [flags]

Subcommands:
  build   build a Go policy package into a WASM module (or a Go plugin)
  check   run a .wasm or .so policy through the ABI checks and a battery of replays

See abi/ABI.md for the policy ABI and the README for writing a policy.
`

func runPolicy(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, policyUsage)
		return nil
	}
	switch args[0] {
	case "build":
		return runPolicyBuild(ctx, e, args[1:])
	case "check":
		return runPolicyCheck(ctx, e, args[1:])
	}
	return usageError{fmt.Errorf("policy: unknown subcommand %q (want build or check)", args[0])}
}

func runPolicyBuild(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "policy build", "policy build [flags] PKG",
		"Builds the Go package PKG, which exports New(*policies.Params) (policies.Policy, error),\n"+
			"into a WASM module for source = \"wasm:FILE\", unchanged. PKG is a builtin policy's\n"+
			"name (h2o), an import path or a directory. Run it inside a Go module that provides\n"+
			"PKG and github.com/kvsim/kvsim.")
	out := fs.String("o", "", "output `FILE` (default: the package's name, with .wasm or .so)")
	asPlugin := fs.Bool("plugin", false, "build a Go plugin (.so, needs cgo) instead of WASM")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("policy build: want one package, got %d", fs.NArg())}
	}
	pkg := fs.Arg(0)
	if newPolicy, ok := builtin.Lookup(pkg); ok {
		path, err := gobuild.PackageOf(newPolicy)
		if err != nil {
			return fmt.Errorf("policy build %s: %w", pkg, err)
		}
		pkg = path
	}
	ext, build := ".wasm", gobuild.WASM
	if *asPlugin {
		ext, build = ".so", gobuild.Plugin
	}
	if *out == "" {
		name := pkg
		if strings.HasPrefix(pkg, ".") || filepath.IsAbs(pkg) {
			if abs, err := filepath.Abs(pkg); err == nil {
				name = abs // "." names the current directory
			}
		}
		*out = filepath.Base(strings.TrimRight(name, "/")) + ext
	}
	start := time.Now()
	if err := build(ctx, pkg, *out); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "built %s in %.1fs\n", *out, time.Since(start).Seconds())
	return nil
}

func runPolicyCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "policy check", "policy check [flags] FILE.wasm|FILE.so",
		"The conformance kit for policy authors. Loads the module (checking its ABI version,\n"+
			"exports and imports) or the plugin, then replays it on small synthetic traces:\n"+
			"legal victims at every budget down to 1 token, tiny prompts, determinism, instances\n"+
			"reused across sequences, prefill block sizes, the reference host, and contract\n"+
			"2.0 (keys, values, queries, compact rows, layer and model pools) call by call.\n"+
			"Prints what passed and what failed; exits 1 if anything failed.")
	paramsJSON := fs.String("params", "{}", "params to build the policy with, as a JSON `object`")
	sameAs := fs.String("same-as", "", "also check that it evicts exactly like the builtin `NAME`, victim for victim")
	memPages := fs.Uint("memory-pages", wasmhost.DefaultMemoryPages, "WASM memory limit in 64 KiB `pages`")
	fuel := fs.Int64("fuel", wasmhost.DefaultFuel, "WASM work budget per call, in `units` (function entries and loop iterations)")
	deadline := fs.Duration("deadline", wasmhost.DefaultDeadline, "WASM per-call wall-clock backstop (0: none)")
	verbose := fs.Bool("v", false, "print what the guest logs with kvpolicy.log")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("policy check: want one .wasm or .so file, got %d", fs.NArg())}
	}
	var params map[string]any
	if err := json.Unmarshal([]byte(*paramsJSON), &params); err != nil {
		return usageError{fmt.Errorf("policy check: -params: %w", err)}
	}
	opts := conformance.Options{Params: params}
	if *sameAs != "" {
		ref, ok := builtin.Lookup(*sameAs)
		if !ok {
			return usageError{fmt.Errorf("policy check: -same-as %q: no builtin policy (have %s)", *sameAs, strings.Join(builtin.Names(), ", "))}
		}
		opts.SameAs, opts.SameAsName = ref, *sameAs
	}

	path := fs.Arg(0)
	var newPolicy policies.New
	switch filepath.Ext(path) {
	case ".wasm":
		if *fuel < 1 {
			return usageError{fmt.Errorf("policy check: -fuel %d: want a positive number of units", *fuel)}
		}
		wopts := wasmhost.Options{MemoryPages: uint32(*memPages), Fuel: *fuel, Deadline: *deadline}
		if *deadline == 0 {
			wopts.Deadline = wasmhost.NoDeadline
		}
		if *verbose {
			wopts.Log = e.stderr
		}
		m, err := wasmhost.Load(ctx, path, wopts)
		if err != nil {
			fmt.Fprintf(e.stdout, "FAIL  load: %v\n", err)
			return errors.New("policy check: the module does not load")
		}
		defer m.Close()
		info := m.Info()
		fmt.Fprintf(e.stdout, "ok    load: ABI %d.%d, exports and imports as ABI.md says (WASI: %v, kvpolicy.log: %v)\n",
			info.ABIMajor, info.ABIMinor, info.WASI, info.Log)
		newPolicy = m.New
	case ".so":
		var err error
		if newPolicy, err = plugin.Open(path); err != nil {
			fmt.Fprintf(e.stdout, "FAIL  load: %v\n", err)
			return errors.New("policy check: the plugin does not load")
		}
		fmt.Fprintf(e.stdout, "ok    load: Go plugin, New has the policies.New signature\n")
	default:
		return usageError{fmt.Errorf("policy check: %s: want a .wasm module or a .so plugin", path)}
	}

	passed, failed := 1, 0
	for _, r := range conformance.Check(ctx, newPolicy, opts) {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(e.stdout, "FAIL  %s: %s\n      %v\n", r.Name, r.Detail, r.Err)
		case r.Info:
			fmt.Fprintf(e.stdout, "info  %s: %s\n", r.Name, r.Detail)
		case r.Skipped:
			fmt.Fprintf(e.stdout, "skip  %s: %s\n", r.Name, r.Detail)
		default:
			passed++
			fmt.Fprintf(e.stdout, "ok    %s: %s\n", r.Name, r.Detail)
		}
	}
	fmt.Fprintf(e.stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("policy check: %d check(s) failed", failed)
	}
	return nil
}
