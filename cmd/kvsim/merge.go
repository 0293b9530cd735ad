package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/scenario"
	"github.com/kvsim/kvsim/sim/shard"
)

// shardFile is a replay or validate shard's file.
type shardFile = shard.File[*validate.Part]

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
	f := &shardFile{Format: shard.Format, Kvsim: shard.Version(), Scenario: hash, Title: sc.Title, Shard: sp,
		Samples: []shard.Sample{}, Part: part}
	for _, k := range part.Samples {
		f.Samples = append(f.Samples, shard.Sample{Index: k, Name: sources[k].Name(), ID: sources[k].Meta().SampleID})
	}
	if err := shard.Write(out, f); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "shard %s: %d of %d samples (%d jobs) written to %s\n", sp, len(part.Samples), len(sources), len(part.Jobs), out)
	return nil
}

// validateShard validates shard sp of the [validate] samples, every cell of pols,
// and writes its shard file to out, for `kvsim merge`.
func validateShard(ctx context.Context, e *env, sc *scenario.Scenario, in *validationInputs, pols []validate.Policy,
	replay *sim.Result, sp shard.Spec, out string) error {
	hash, err := validationHash(sc)
	if err != nil {
		return err
	}
	part, err := validate.RunPart(ctx, in.engine, pols, sc.ValidateBudgets(), in.samples, sp.Has, sc.Compare,
		validate.RunOptions{Cell: in.opts, Simulated: simulated(replay)})
	if err != nil {
		return err
	}
	f := &shardFile{Format: shard.Format, Kvsim: shard.Version(), Scenario: hash, Title: sc.Title, Shard: sp,
		Samples: []shard.Sample{}, Validation: part}
	for _, k := range part.Covered {
		f.Samples = append(f.Samples, shard.Sample{Index: k, Name: sc.RelativePath(sc.Validate.Data), ID: strconv.Itoa(sc.Validate.Offset + k)})
	}
	if err := shard.Write(out, f); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "shard %s: %d of %d samples × %d cells written to %s\n", sp, len(part.Covered), part.Samples, len(part.Cells), out)
	return nil
}

// validationHash identifies a validation: the scenario, and the replay result it
// reads or else the traces it replays.
func validationHash(sc *scenario.Scenario) (string, error) {
	if path := sc.Validate.ReplayResult; path != "" {
		data, err := os.ReadFile(sc.RelativePath(path))
		if err != nil {
			return "", fmt.Errorf("replay result: %w", err)
		}
		hash, err := sc.ContentHash(nil)
		return fmt.Sprintf("%s+%x", hash, sha256.Sum256(data)), err
	}
	sources, err := sc.Sources()
	if err != nil {
		return "", err
	}
	defer scenario.Close(sources)
	return sc.ContentHash(sources)
}

func runMerge(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "merge", "merge [flags] SHARD.json...",
		"Merges the shard files of `kvsim replay -shard i/n` (or of validate -shard) into\n"+
			"the tables, CSV, JSON or plot that one run of the whole scenario prints: the\n"+
			"same figures, bit for bit (times are measured: merged, they are the shards').\n"+
			"It refuses shards of different scenarios or kvsim versions and overlapping\n"+
			"shards, and names the missing ones, so that only those are rerun.")
	format := fs.String("format", "table", "output format: "+strings.Join(render.Formats, ", "))
	out := fs.String("out", "", "write the results to `FILE` (atomically) instead of stdout")
	plotPath := fs.String("plot", "", "also draw the results into `FILE` (.png, .svg or .pdf), as replay or validate does")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *plotPath != "" {
		if _, err := render.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("merge: -plot: %w", err)}
		}
	}
	if !slices.Contains(render.Formats, *format) {
		return usageError{fmt.Errorf("merge: -format %q: want one of %s", *format, strings.Join(render.Formats, ", "))}
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("merge: no shard files")}
	}
	files := make([]*shardFile, fs.NArg())
	for i, path := range fs.Args() {
		f, err := shard.Read[*validate.Part](path)
		if err != nil {
			return err
		}
		files[i] = f
	}
	if v := files[0].Validation; v != nil {
		parts, err := shard.Validations(files, fs.Args())
		if err != nil {
			return err
		}
		cells, err := validate.MergeParts(parts, fs.Args())
		if err != nil {
			return err
		}
		res := validate.Validation{Compare: v.Compare}
		for _, c := range cells {
			res.Cells = append(res.Cells, validate.ValidatedCell{Cell: c.Cell, SimulatedHitRate: c.SimulatedHitRate})
		}
		return finishValidation(e, &res, v.Seed, *format, *out, *plotPath)
	}
	res, err := shard.Merge(files, fs.Args())
	if err != nil {
		return err
	}
	return writeResult(e, res, files[0].Title, *format, *out, *plotPath)
}
