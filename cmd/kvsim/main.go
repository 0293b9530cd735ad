// Command kvsim captures attention traces from OPT models, replays them through KV-cache
// eviction policies at many budgets, and validates the winners in real decoding.
//
// Run `kvsim help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand (or a group, like "trace", whose run dispatches further).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what commands may touch, so tests can run them in-process.
type env struct {
	stdout, stderr io.Writer
	stderrIsTTY    bool
}

var commands []command

func init() {
	commands = []command{
		{"replay", "replay traces through eviction policies at many budgets", runReplay},
		{"merge", "merge the shard files of replay or validate -shard into one run's results", runMerge},
		{"trace", "make and inspect trace files (trace synth, trace info, trace stats)", runTrace},
		{"policy", "build and check WASM and plugin policies (policy build, policy check)", runPolicy},
		{"capture", "run an OPT checkpoint over a dataset and write a trace per sample", runCapture},
		{"validate", "rerun decoding with policies in the loop and check the simulator's ranking", runValidate},
		{"model", "make OPT checkpoints for tests and demos (model synth)", runModel},
		{"gpu", "CUDA backend diagnostics: gpu info, compare, bench (needs -tags cuda)", runGPU},
	}
}

const usage = `kvsim: a toolkit for KV-cache eviction research.

Usage:
  kvsim <command> [flags] [args]

Commands:
%s
Run 'kvsim <command> -h' for a command's flags.

Quick start (no downloads): kvsim replay        # runs the embedded demo scenario
`

func printUsage(w io.Writer) {
	var b strings.Builder
	cmds := append([]command(nil), commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, usage, b.String())
}

func main() {
	// SIGINT and SIGTERM cancel ctx: a long command stops at its next check and
	// removes its temporary files. A second signal kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stderrIsTTY: isTerminal(os.Stderr)}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run dispatches args and returns the exit status: 0 success, 1 failure, 2 bad usage.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, e, []string{args[1], "-h"})
		}
		printUsage(e.stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(e, c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "kvsim: unknown command %q\n\n", args[0])
	printUsage(e.stderr)
	return 2
}

// usageError marks errors the user fixes by changing the command line.
type usageError struct{ error }

func exitCode(e *env, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "kvsim: %v\n", err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "kvsim: %v\n", err)
		return 1
	}
}

// newFlags makes a flag set whose -h prints the command's synopsis and flags.
func newFlags(e *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kvsim %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and turns flag errors into usage errors. Every command parses
// through it, so that all of them take flags before and after their positional
// arguments, as -flag or --flag; everything after a lone "--" is positional.
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(io.Discard)
				return err
			}
			return usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if stop := len(args) - len(rest); stop > 0 && args[stop-1] == "--" && (stop < 2 || !takesValue(fs, args[stop-2])) {
			positional = append(positional, rest...) // flag.Parse stopped at "--"
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...)) // leaves fs.Args() = positional
}

// takesValue says whether arg is a flag that consumes the next argument as its
// value: a non-boolean flag written without "=".
func takesValue(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	name = strings.TrimPrefix(name, "-")
	if !ok || name == "" || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !b.IsBoolFlag()
}
