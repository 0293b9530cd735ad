package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/atomicfile"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/scenario"
)

func runValidate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "validate", "validate [flags] [SCENARIO.toml | NAME]",
		"Reruns real decoding with each policy deciding evictions inside the model, as the\n"+
			"scenario's [validate] table says, and compares the outputs with full-cache decoding\n"+
			"and the references: ROUGE, agreement with the full cache, teacher-forced NLL,\n"+
			"throughput and peak KV memory. With a replay result it also prints how well the\n"+
			"simulated hit rate ranks the cells (Kendall τ, Spearman ρ). Finished cells go to\n"+
			"the -state file as they finish, so an interrupted run resumes. Without a scenario\n"+
			"it runs the embedded demo's [validate] table on the embedded trained OPT.")
	format := fs.String("format", "table", "output format: "+strings.Join(render.Formats, ", "))
	out := fs.String("out", "", "write the results to `FILE` (atomically) instead of stdout")
	state := fs.String("state", "", "finished cells, one JSON per line, for resuming (default: -out with .cells.jsonl, else none)")
	device := fs.String("device", "", deviceUsage+" (default: the scenario's)")
	threads := fs.Int("threads", 0, "CPU threads for the backend and for replay (0: one per CPU)")
	plotPath := fs.String("plot", "", "also draw each validated metric against the simulated hit rate into `FILE` (.png, .svg or .pdf)")
	progress := fs.String("progress", "auto", progressUsage)
	compare := fs.String("compare", "", "print each cell's paired difference from `POLICY`'s at the same budget (overrides the scenario's compare)")
	shardFlag := fs.String("shard", "", strings.Replace(shardUsage, "index", "number in the [validate] data", 1)+"; writes a shard file to -out for kvsim merge")
	if err := parse(fs, args); err != nil {
		return err
	}
	sp, err := parseShard("validate", *shardFlag)
	if err != nil {
		return err
	}
	if sp != nil && (*out == "" || *plotPath != "" || *format != "table" || *state != "") {
		return usageError{fmt.Errorf("validate: -shard writes a shard file to -out, which kvsim merge turns into tables, -format and -plot; a shard keeps no -state")}
	}
	if *plotPath != "" {
		if _, err := render.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("validate: -plot: %w", err)}
		}
	}
	if !slices.Contains(render.Formats, *format) {
		return usageError{fmt.Errorf("validate: -format %q: want one of %s", *format, strings.Join(render.Formats, ", "))}
	}
	if fs.NArg() > 1 {
		return usageError{fmt.Errorf("validate: want one scenario, got %d", fs.NArg())}
	}
	if *state == "" && *out != "" && sp == nil {
		*state = strings.TrimSuffix(*out, filepath.Ext(*out)) + ".cells.jsonl"
	}
	if err := checkOutputs(*out, *plotPath, *state); err != nil {
		return err
	}
	sc, err := loadScenario(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *compare != "" {
		if err := sc.SetCompare(*compare); err != nil {
			return usageError{fmt.Errorf("validate: -compare: %w", err)}
		}
	}
	v := sc.Validate
	if v == nil {
		return usageError{fmt.Errorf("validate: scenario %s has no [validate] table", sc.Path)}
	}
	if *device == "" {
		*device = v.Device
	}

	in, err := openValidation(sc, *device, *threads)
	if err != nil {
		return err
	}
	defer in.close()
	engine, samples, opts := in.engine, in.samples, in.opts
	candidates, err := validateCandidates(e, sc, engine)
	if err != nil {
		return err
	}
	replay, err := replayFor(ctx, e, sc, candidates, *threads, *progress)
	if err != nil {
		return err
	}
	specs, err := sc.ValidateSpecs(candidates, replay)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		if spec.Accounting == host.Mean {
			return usageError{fmt.Errorf("validate: policy %q: mean accounting is replay's only (its budget search reruns each sequence); set accounting = \"peak\" or \"nominal\" in %s", spec.Name, sc.Path)}
		}
		if i := slices.Index(replay.Policies, spec.Name); i >= 0 && len(replay.Budgets) > 0 {
			if a := replay.Cell(i, 0).Accounting; a != "" && a != spec.Accounting.String() {
				return fmt.Errorf("validate: policy %q: the replay result was replayed under %s accounting, the scenario asks for %s: replay it again", spec.Name, a, spec.Accounting)
			}
		}
	}
	var pols []validate.Policy
	for _, spec := range specs {
		pols = append(pols, validate.Policy{Name: spec.Name, New: spec.New, Accounting: spec.Accounting})
	}
	if sp != nil {
		return validateShard(ctx, e, sc, in, pols, replay, *sp, *out)
	}
	res := validate.Validation{Compare: sc.Compare}
	bar := newProgress(e, *progress, "validate (sample·cell)")
	total := len(specs) * len(sc.ValidateBudgets()) * len(samples)
	res.Cells, err = validate.Run(ctx, engine, pols, sc.ValidateBudgets(), samples, validate.RunOptions{Cell: opts, State: *state,
		Simulated: simulated(replay),
		Progress:  func(done int) { bar(done, total) }})
	if err != nil {
		return err
	}
	return finishValidation(e, &res, sc.Seed, *format, *out, *plotPath)
}

// finishValidation adds the rank agreement and the intervals to the cells, draws
// them into plotPath when set, and writes them in format to out, or to stdout.
func finishValidation(e *env, res *validate.Validation, seed uint64, format, out, plotPath string) error {
	validate.Finish(res, seed)
	if plotPath != "" {
		if err := validate.Plot(plotPath, res); err != nil {
			return err
		}
	}
	if out != "" {
		return atomicfile.Write(out, func(w io.Writer) error { return validate.Write(w, res, format) })
	}
	return validate.Write(e.stdout, res, format)
}

// validationInputs is what validation decodes with: the engine on the model of the
// [validate] table, its samples tokenized, and the options every cell shares.
type validationInputs struct {
	engine  *gpu.Engine
	samples []validate.Sample
	opts    validate.CellOptions
	close   func()
}

// openValidation loads the [validate] table's data and model and opens the
// backend, before anything slow runs, so that a bad path or device fails at once.
func openValidation(sc *scenario.Scenario, device string, threads int) (*validationInputs, error) {
	v := sc.Validate
	template, err := dataset.ParseTemplate(cmp.Or(v.Template, dataset.DefaultTemplate))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: [validate] template: %w", sc.Path, err)
	}
	_, records, om, _, err := openDataset(sc, "validate", &v.Dataset, device, threads)
	if err != nil {
		return nil, err
	}
	maxPrompt := v.MaxPromptTokens
	if maxPrompt == 0 {
		maxPrompt = om.model.Config.MaxPositionEmbeddings - v.GenTokens
	}
	samples, err := validate.Samples(records, template, om.tok, maxPrompt)
	if err != nil {
		om.Close()
		return nil, err
	}
	return &validationInputs{engine: om.engine, samples: samples, close: om.Close,
		opts: validate.CellOptions{MaxNew: v.GenTokens, IgnoreEOS: v.IgnoreEOS, Seed: sc.Seed, Stem: v.Stem == nil || *v.Stem,
			Detokenize: om.tok.DecodeKnown}}, nil
}

// validateCandidates names the policies the scenario lets validation pick from,
// leaving out the clairvoyant ones (with a note when they were not listed).
func validateCandidates(e *env, sc *scenario.Scenario, engine *gpu.Engine) ([]string, error) {
	specs, err := sc.Specs()
	if err != nil {
		return nil, err
	}
	m := engine.Config()
	shape := policies.Config{Layers: m.NumHiddenLayers, Heads: m.NumAttentionHeads, HeadDim: m.HeadDim()}
	var clairvoyant []string
	for _, spec := range specs {
		c, err := host.Clairvoyant(spec.New, shape)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", spec.Name, err)
		}
		if c {
			clairvoyant = append(clairvoyant, spec.Name)
		}
	}
	names, err := sc.ValidateCandidates(clairvoyant)
	if err == nil && len(clairvoyant) > 0 {
		fmt.Fprintf(e.stderr, "validate: leaving out %s: clairvoyant policies need the future, which only replay has\n",
			strings.Join(clairvoyant, ", "))
	}
	return names, err
}

// replayFor is the replay result the simulated hit rates come from: the
// [validate] table's replay_result, or else a replay of the candidate policies at
// the validation budgets.
func replayFor(ctx context.Context, e *env, sc *scenario.Scenario, candidates []string, threads int, progress string) (*sim.Result, error) {
	if path := sc.Validate.ReplayResult; path != "" {
		return report.ReadResult(sc.RelativePath(path))
	}
	specs, err := sc.SpecsNamed(candidates)
	if err != nil {
		return nil, err
	}
	sources, closeSources, err := scenarioSources(ctx, e, sc, threads, progress)
	defer closeSources()
	if err != nil {
		return nil, err
	}
	opts := sc.Options()
	opts.Compare = ""
	opts.Budgets = sc.ValidateBudgets()
	if threads > 0 {
		opts.Threads = threads
	}
	opts.Progress = newProgress(e, progress, "replay (sample·layer)")
	return sim.Replay(ctx, sources, specs, opts)
}

// simulated is replay's hit rate of a validated cell (validate.RunOptions.Simulated).
func simulated(r *sim.Result) func(policy string, b host.Budget) *float64 {
	return func(policy string, b host.Budget) *float64 { return simulatedHitRate(r, policy, b) }
}

// simulatedHitRate is replay's hit rate for (policy, budget), or nil.
func simulatedHitRate(r *sim.Result, policy string, budget host.Budget) *float64 {
	if r == nil {
		return nil
	}
	i, j := slices.Index(r.Policies, policy), slices.Index(r.BudgetSpecs, budget)
	if i < 0 || j < 0 || r.Cell(i, j).Failed != "" {
		return nil
	}
	hit := r.Cell(i, j).HitRate
	return &hit
}
