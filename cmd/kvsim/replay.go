package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/kvsim/kvsim/scenarios"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/scenario"
)

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replay", "replay [flags] [SCENARIO.toml]",
		"Replays a scenario's traces through its policies at all of its budgets in one pass,\n"+
			"and prints hit-rate tables. Without a scenario it runs the embedded demo\n"+
			"(synthetic traces, no downloads). See the README for the scenario reference.")
	format := fs.String("format", "table", "output format: "+strings.Join(report.Formats, ", "))
	out := fs.String("out", "", "write the results to `FILE` (atomically) instead of stdout")
	plotPath := fs.String("plot", "", "also draw hit rate against budget into `FILE` (.png, .svg or .pdf)")
	threads := fs.Int("threads", 0, "worker threads (0: the scenario's, else one per CPU); results do not depend on it")
	progress := fs.String("progress", "auto", progressUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *plotPath != "" {
		if _, err := report.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("replay: -plot: %w", err)}
		}
	}
	if !slices.Contains(report.Formats, *format) {
		return usageError{fmt.Errorf("replay: -format %q: want one of %s", *format, strings.Join(report.Formats, ", "))}
	}
	if fs.NArg() > 1 {
		return usageError{fmt.Errorf("replay: want one scenario, got %d", fs.NArg())}
	}
	if err := checkOutputs(*out, *plotPath); err != nil {
		return err
	}
	sc, err := loadScenario(fs.Arg(0))
	if err != nil {
		return err
	}
	specs, err := sc.Specs()
	if err != nil {
		return err
	}
	sources, err := sc.Sources()
	if err != nil {
		return err
	}
	defer scenario.Close(sources)
	opts := sc.Options()
	if *threads > 0 {
		opts.Threads = *threads
	}
	opts.Progress = newProgress(e, *progress, "replay (sample·layer)")
	res, err := sim.Replay(ctx, sources, specs, opts)
	if err != nil {
		return err
	}
	if *plotPath != "" {
		if err := report.Plot(*plotPath, res); err != nil {
			return err
		}
	}
	if sc.Title != "" && *format == "table" && *out == "" {
		fmt.Fprintf(e.stdout, "%s\n", sc.Title)
	}
	if *out != "" {
		return report.WriteFile(*out, res, *format)
	}
	return report.Write(e.stdout, res, *format)
}

// loadScenario reads a scenario file, or the embedded demo when path is empty.
func loadScenario(path string) (*scenario.Scenario, error) {
	if path != "" {
		return scenario.Load(path)
	}
	data, err := scenarios.FS.ReadFile(scenarios.Demo)
	if err != nil {
		return nil, err
	}
	return scenario.Parse("(embedded) scenarios/"+scenarios.Demo, data)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
