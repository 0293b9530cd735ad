package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/scenarios"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/scenario"
)

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replay", "replay [flags] [SCENARIO.toml | NAME]",
		"Replays a scenario's traces through its policies at all of its budgets in one pass,\n"+
			"and prints hit-rate tables. Without a scenario it runs the embedded demo: traces\n"+
			"captured on the CPU from the embedded trained OPT, no downloads. SCENARIO may also\n"+
			"name an embedded scenario: "+strings.Join(scenarios.Names(), ", ")+".\n"+
			"See the README for the scenario reference.")
	format := fs.String("format", "table", "output format: "+strings.Join(render.Formats, ", "))
	out := fs.String("out", "", "write the results to `FILE` (atomically) instead of stdout")
	plotPath := fs.String("plot", "", "also draw hit rate against budget into `FILE` (.png, .svg or .pdf), and quality against memory into FILE-frontier")
	threads := fs.Int("threads", 0, "worker threads (0: the scenario's, else one per CPU); results do not depend on it")
	progress := fs.String("progress", "auto", progressUsage)
	accounting := fs.String("accounting", "", "what budgets bound for every policy, overriding the scenario: "+strings.Join(host.Accountings, ", "))
	compare := fs.String("compare", "", "print each policy's paired difference from `POLICY` (overrides the scenario's compare)")
	shardFlag := fs.String("shard", "", shardUsage+"; writes a shard file to -out for kvsim merge")
	if err := parse(fs, args); err != nil {
		return err
	}
	sp, err := parseShard("replay", *shardFlag)
	if err != nil {
		return err
	}
	if sp != nil && (*out == "" || *plotPath != "" || *format != "table") {
		return usageError{fmt.Errorf("replay: -shard writes a shard file to -out, which kvsim merge turns into tables, -format and -plot")}
	}
	var mode host.Accounting
	if *accounting != "" {
		if mode, err = host.ParseAccounting(*accounting); err != nil {
			return usageError{fmt.Errorf("replay: -accounting: %w", err)}
		}
	}
	if *plotPath != "" {
		if _, err := render.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("replay: -plot: %w", err)}
		}
	}
	if !slices.Contains(render.Formats, *format) {
		return usageError{fmt.Errorf("replay: -format %q: want one of %s", *format, strings.Join(render.Formats, ", "))}
	}
	if fs.NArg() > 1 {
		return usageError{fmt.Errorf("replay: want one scenario, got %d", fs.NArg())}
	}
	if err := checkOutputs(*out, *plotPath); err != nil {
		return err
	}
	sc, err := loadScenario(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *accounting != "" {
		sc.SetAccounting(mode)
	}
	if *compare != "" {
		if err := sc.SetCompare(*compare); err != nil {
			return usageError{fmt.Errorf("replay: -compare: %w", err)}
		}
	}
	specs, err := sc.Specs()
	if err != nil {
		return err
	}
	opts := sc.Options()
	if *threads > 0 {
		opts.Threads = *threads
	}
	sources, closeSources, err := scenarioSources(ctx, e, sc, *threads, *progress)
	defer closeSources()
	if err != nil {
		return err
	}
	opts.Progress = newProgress(e, *progress, "replay (sample·layer)")
	if sp != nil {
		return replayShard(ctx, e, sc, sources, specs, opts, *sp, *out)
	}
	res, err := sim.Replay(ctx, sources, specs, opts)
	if err != nil {
		return err
	}
	return writeResult(e, res, sc.Title, *format, *out, *plotPath)
}

// writeResult draws res into plotPath when set, and writes it in format to out, or
// to stdout under its title.
func writeResult(e *env, res *sim.Result, title, format, out, plotPath string) error {
	if plotPath != "" {
		if err := report.Plot(plotPath, res); err != nil {
			return err
		}
		if err := report.PlotFrontier(report.FrontierPath(plotPath), res); err != nil {
			return err
		}
	}
	if title != "" && format == "table" && out == "" {
		fmt.Fprintf(e.stdout, "%s\n", title)
	}
	if out != "" {
		return report.WriteFile(out, res, format)
	}
	return report.Write(e.stdout, res, format)
}

// loadScenario reads a scenario file, an embedded scenario by name ("paper" for
// scenarios/paper.toml) when no such file exists, or the embedded demo when path
// is empty, and opens its policies' sources.
func loadScenario(ctx context.Context, path string) (*scenario.Scenario, error) {
	sc, err := parseScenario(path)
	if err != nil {
		return nil, err
	}
	if err := sc.OpenPolicies(policyOpener(ctx)); err != nil {
		return nil, err
	}
	return sc, nil
}

// parseScenario finds and parses the scenario loadScenario names.
func parseScenario(path string) (*scenario.Scenario, error) {
	name := scenarios.Demo
	if path != "" {
		_, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(path, `/\.`) && !scenarios.Has(path):
			return nil, usageError{fmt.Errorf("scenario %q: no such file, nor an embedded scenario of that name (have %s)",
				path, strings.Join(scenarios.Names(), ", "))}
		case err == nil || !scenarios.Has(path):
			return scenario.Load(path)
		}
		name = path + ".toml"
	}
	data, err := scenarios.FS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return scenario.Parse("(embedded) scenarios/"+name, data)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
