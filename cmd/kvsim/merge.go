package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/scenario"
	"github.com/kvsim/kvsim/sim/shard"
)

const shardUsage = "run only shard `i/n` of the samples (those whose index mod n is i), or \"slurm\": i from $SLURM_ARRAY_TASK_ID, n from $KVSIM_SHARDS or $SLURM_ARRAY_TASK_COUNT"

// parseShard reads a -shard flag; "" is the whole scenario (nil).
func parseShard(command, value string) (*shard.Spec, error) {
	if value == "" {
		return nil, nil
	}
	sp, err := shard.Parse(value, os.Getenv)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: -%w", command, err)}
	}
	return &sp, nil
}

// replayShard replays shard sp of the scenario and writes its shard file to out,
// for `kvsim merge`.
func replayShard(ctx context.Context, e *env, sc *scenario.Scenario, sources []sim.Source, specs []sim.PolicySpec, opts sim.Options, sp shard.Spec, out string) error {
	hash, err := sc.ContentHash(sources)
	if err != nil {
		return err
	}
	part, err := sim.ReplayPart(ctx, sources, specs, opts, sp.Has)
	if err != nil {
		return err
	}
	f := &shard.File{Format: shard.Format, Kvsim: shard.Version(), Scenario: hash, Title: sc.Title, Shard: sp,
		Samples: []shard.Sample{}, Part: *part}
	for _, k := range part.Samples {
		f.Samples = append(f.Samples, shard.Sample{Index: k, Name: sources[k].Name(), ID: sources[k].Meta().SampleID})
	}
	if err := shard.Write(out, f); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "shard %s: %d of %d samples (%d jobs) written to %s\n", sp, len(part.Samples), len(sources), len(part.Jobs), out)
	return nil
}

func runMerge(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "merge", "merge [flags] SHARD.json...",
		"Merges the shard files of `kvsim replay -shard i/n` into the tables, CSV, JSON or\n"+
			"plot that one replay of the whole scenario prints: the same figures, bit for bit\n"+
			"(policy time is measured, so it is the shards' sum). It refuses shards of\n"+
			"different scenarios or kvsim versions and overlapping shards, and names the\n"+
			"missing ones, so that only those are rerun.")
	format := fs.String("format", "table", "output format: "+strings.Join(report.Formats, ", "))
	out := fs.String("out", "", "write the results to `FILE` (atomically) instead of stdout")
	plotPath := fs.String("plot", "", "also draw hit rate against budget into `FILE` (.png, .svg or .pdf)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *plotPath != "" {
		if _, err := report.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("merge: -plot: %w", err)}
		}
	}
	if !slices.Contains(report.Formats, *format) {
		return usageError{fmt.Errorf("merge: -format %q: want one of %s", *format, strings.Join(report.Formats, ", "))}
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("merge: no shard files")}
	}
	files := make([]*shard.File, fs.NArg())
	for i, path := range fs.Args() {
		f, err := shard.Read(path)
		if err != nil {
			return err
		}
		files[i] = f
	}
	res, err := shard.Merge(files, fs.Args())
	if err != nil {
		return err
	}
	return writeResult(e, res, files[0].Title, *format, *out, *plotPath)
}
