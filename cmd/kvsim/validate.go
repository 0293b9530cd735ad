package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/checkpoint"
	"github.com/kvsim/kvsim/gpu/tokenizer"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/atomicfile"
	"github.com/kvsim/kvsim/sim/rank"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/scenario"
	"github.com/kvsim/kvsim/sim/stats"
	"github.com/kvsim/kvsim/tracecap"
)

// validation is what `kvsim validate` prints: the cells, and how well the simulated
// hit rate ranks them on each metric.
type validation struct {
	Cells     []validatedCell `json:"cells"`
	Agreement []agreement     `json:"agreement,omitempty"`
	// Compare is the reference policy of the paired differences (validatedCell.Diff).
	Compare string `json:"compare,omitempty"`
}

// validatedCell is a validated cell with the hit rate replay simulated for it.
type validatedCell struct {
	validate.Cell
	// SimulatedHitRate is replay's hit rate for the same policy and budget; absent
	// without a replay result.
	SimulatedHitRate *float64 `json:"simulated_hit_rate,omitempty"`
	// CI holds each metric's 95% interval over samples.
	CI   map[string]stats.Interval `json:"ci,omitempty"`
	Diff *validationDiff           `json:"diff,omitempty"`
}

// agreement is the rank agreement between simulated hit rate and one metric. A
// correlation is null when undefined: when either side is constant over the cells.
type agreement struct {
	Metric     string   `json:"metric"`
	Cells      int      `json:"cells"`
	KendallTau *float64 `json:"kendall_tau"`
	// KendallTauCI is τ's 95% percentile-bootstrap interval over samples, seeded
	// with the scenario seed; absent when the cells lack per-sample values.
	KendallTauCI *stats.Interval `json:"kendall_tau_ci,omitempty"`
	Spearman     *float64        `json:"spearman_rho"`
}

// defined is x, or nil when x is NaN.
func defined(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

// formatCorrelation prints a correlation, "-" when undefined.
func formatCorrelation(x *float64) string {
	if x == nil {
		return "-"
	}
	return strconv.FormatFloat(*x, 'f', 3, 64)
}

// metric is a validated metric, by the name the tables use.
type metric struct {
	name string
	get  func(*validate.Cell) float64
}

// metrics are the validated metrics, by the names the tables use; for NLL lower is
// better, which shows as a negative correlation.
var metrics = []metric{
	{"rouge1_ref", func(c *validate.Cell) float64 { return c.Rouge1Ref }},
	{"rouge2_ref", func(c *validate.Cell) float64 { return c.Rouge2Ref }},
	{"rougeL_ref", func(c *validate.Cell) float64 { return c.RougeLRef }},
	{"rouge1_full", func(c *validate.Cell) float64 { return c.Rouge1Full }},
	{"rouge2_full", func(c *validate.Cell) float64 { return c.Rouge2Full }},
	{"rougeL_full", func(c *validate.Cell) float64 { return c.RougeLFull }},
	{"agreement", func(c *validate.Cell) float64 { return c.Agreement }},
	{"nll", func(c *validate.Cell) float64 { return c.NLL }},
}

func runValidate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "validate", "validate [flags] [SCENARIO.toml | NAME]",
		"Reruns real decoding with each policy deciding evictions inside the model, as the\n"+
			"scenario's [validate] table says, and compares the outputs with full-cache decoding\n"+
			"and the references: ROUGE, agreement with the full cache, teacher-forced NLL,\n"+
			"throughput and peak KV memory. With a replay result it also prints how well the\n"+
			"simulated hit rate ranks the cells (Kendall τ, Spearman ρ). Finished cells go to\n"+
			"the -state file as they finish, so an interrupted run resumes. Without a scenario\n"+
			"it runs the embedded demo's [validate] table on the embedded trained OPT.")
	format := fs.String("format", "table", "output format: "+strings.Join(report.Formats, ", "))
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
		if _, err := report.PlotFormat(*plotPath); err != nil {
			return usageError{fmt.Errorf("validate: -plot: %w", err)}
		}
	}
	if !slices.Contains(report.Formats, *format) {
		return usageError{fmt.Errorf("validate: -format %q: want one of %s", *format, strings.Join(report.Formats, ", "))}
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
	sc, err := loadScenario(fs.Arg(0))
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
	candidates, err := validateCandidates(e, sc)
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
		if spec.Accounting == sim.Mean {
			return usageError{fmt.Errorf("validate: policy %q: mean accounting is replay's only (its budget search reruns each sequence); set accounting = \"peak\" or \"nominal\" in %s", spec.Name, sc.Path)}
		}
		if i := slices.Index(replay.Policies, spec.Name); i >= 0 && len(replay.Budgets) > 0 {
			if a := replay.Cell(i, 0).Accounting; a != "" && a != spec.Accounting.String() {
				return fmt.Errorf("validate: policy %q: the replay result was replayed under %s accounting, the scenario asks for %s: replay it again", spec.Name, a, spec.Accounting)
			}
		}
	}
	if sp != nil {
		return validateShard(ctx, e, sc, in, specs, replay, *sp, *out)
	}
	done, err := readCells(*state)
	if err != nil {
		return err
	}
	res := validation{Compare: sc.Compare}
	var baselines []validate.Baseline // full-cache outputs, decoded when a cell first needs them
	budgets := sc.ValidateBudgets()
	total := len(specs) * len(budgets) * len(samples)
	bar := newProgress(e, *progress, "validate (sample·cell)")
	for i, spec := range specs {
		for j, b := range budgets {
			first := (i*len(budgets) + j) * len(samples) // this cell's first sample, in the bar
			bar(first, total)
			cell, ok := done[cellKey(spec.Name, b.String())]
			if ok && accountingOf(&cell) != spec.Accounting.String() {
				return fmt.Errorf("validate: state %s holds %s @ %s under %s accounting, the scenario asks for %s: give this run its own -state",
					*state, spec.Name, b, accountingOf(&cell), spec.Accounting)
			}
			if !ok {
				if baselines == nil {
					if baselines, err = validate.FullCache(ctx, engine, samples, opts); err != nil {
						return err
					}
				}
				opts.Budget, opts.Accounting = b, spec.Accounting
				opts.Progress = func(n int) { bar(first+n, total) }
				c, err := validate.RunCell(ctx, engine, spec.Name, spec.New, samples, baselines, opts)
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return errors.New("validate interrupted; run the same command again to resume from the finished cells")
					}
					return err
				}
				if err := appendCell(*state, c); err != nil {
					return err
				}
				cell = *c
			}
			res.Cells = append(res.Cells, validatedCell{Cell: cell, SimulatedHitRate: simulatedHitRate(replay, spec.Name, b.String())})
		}
	}
	bar(total, total)
	return finishValidation(e, &res, sc.Seed, *format, *out, *plotPath)
}

// finishValidation adds the rank agreement and the intervals to the cells, draws
// them into plotPath when set, and writes them in format to out, or to stdout.
func finishValidation(e *env, res *validation, seed uint64, format, out, plotPath string) error {
	res.Agreement = rankAgreement(res.Cells, seed)
	addIntervals(res)
	if plotPath != "" {
		if err := report.PlotFigure(plotPath, validationFigure(res)); err != nil {
			return err
		}
	}
	if out != "" {
		return atomicfile.Write(out, func(w io.Writer) error { return writeValidation(w, res, format) })
	}
	return writeValidation(e.stdout, res, format)
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
	templateText := v.Template
	if templateText == "" {
		templateText = tracecap.DefaultTemplate
	}
	template, err := tracecap.ParseTemplate(templateText)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: [validate] template: %w", sc.Path, err)
	}
	fields := datasetFields(v.DocumentField, v.SummaryField, v.IDField)
	data, err := sc.ResolvePath(v.Data)
	if err != nil {
		return nil, err
	}
	records, err := tracecap.ReadJSONL(data, fields, v.Offset, v.Samples)
	if err != nil {
		return nil, err
	}
	modelDir, err := sc.ResolvePath(v.Model)
	if err != nil {
		return nil, err
	}
	model, err := checkpoint.Load(modelDir)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: [validate] model: %w", sc.Path, err)
	}
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		model.Close()
		return nil, err
	}
	backend, err := openBackend(device, model, threads)
	if err != nil {
		model.Close()
		return nil, err
	}
	in := &validationInputs{engine: gpu.New(backend), close: func() { backend.Close(); model.Close() }}

	maxPrompt := v.MaxPromptTokens
	if maxPrompt == 0 {
		maxPrompt = model.Config.MaxPositionEmbeddings - v.GenTokens
	}
	in.samples = make([]validate.Sample, len(records))
	for i, r := range records {
		p, err := template.Build(tok, r.Document, maxPrompt)
		if err != nil {
			in.close()
			return nil, fmt.Errorf("sample %s: %w", r.ID, err)
		}
		in.samples[i] = validate.Sample{Prompt: p.Tokens, Reference: r.Reference}
	}
	in.opts = validate.CellOptions{MaxNew: v.GenTokens, IgnoreEOS: v.IgnoreEOS, Seed: sc.Seed, Stem: v.Stem == nil || *v.Stem,
		Detokenize: tok.DecodeKnown}
	return in, nil
}

// validateCandidates names the policies the scenario lets validation pick from,
// leaving out the clairvoyant ones (with a note when they were not listed).
func validateCandidates(e *env, sc *scenario.Scenario) ([]string, error) {
	specs, err := sc.Specs()
	if err != nil {
		return nil, err
	}
	var clairvoyant []string
	for _, spec := range specs {
		c, err := validate.Clairvoyant(spec.New)
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
		return scenario.ReadResult(sc.RelativePath(path))
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

// validationFigure plots validated metrics, one panel each and one line per
// policy over its budgets, against the simulated hit rate when every cell has one
// (a simulator that ranks right makes rising lines, falling for NLL), else against
// the budget in tokens.
func validationFigure(res *validation) report.Figure {
	bySimulation := true
	for i := range res.Cells {
		bySimulation = bySimulation && res.Cells[i].SimulatedHitRate != nil
	}
	xLabel := "budget (tokens, mean over samples)"
	if bySimulation {
		xLabel = "simulated hit rate"
	}
	var f report.Figure
	for _, m := range []struct{ name, title string }{
		{"rougeL_full", "ROUGE-L F1 against the full-cache output"},
		{"agreement", "share of full-cache tokens before the first divergence"},
		{"nll", "teacher-forced NLL of the full-cache output (lower is better)"},
		{"rougeL_ref", "ROUGE-L F1 against the references"},
	} {
		get := metrics[slices.IndexFunc(metrics, func(x metric) bool { return x.name == m.name })].get
		panel := report.Panel{Title: m.title, XLabel: xLabel, YLabel: m.name}
		for i := range res.Cells {
			c := &res.Cells[i]
			x := c.BudgetTokens
			if bySimulation {
				x = *c.SimulatedHitRate
			}
			k := slices.IndexFunc(panel.Series, func(s report.Series) bool { return s.Name == c.Policy })
			if k < 0 {
				k = len(panel.Series)
				panel.Series = append(panel.Series, report.Series{Name: c.Policy})
			}
			panel.Series[k].Points = append(panel.Series[k].Points, report.Point{X: x, Y: get(&c.Cell)})
		}
		for _, s := range panel.Series {
			slices.SortStableFunc(s.Points, func(a, b report.Point) int { return cmp.Compare(a.X, b.X) })
		}
		f.Panels = append(f.Panels, panel)
	}
	return f
}

// simulatedHitRate is replay's hit rate for (policy, budget label), or nil.
func simulatedHitRate(r *sim.Result, policy, budget string) *float64 {
	if r == nil {
		return nil
	}
	i, j := slices.Index(r.Policies, policy), slices.Index(r.Budgets, budget)
	if i < 0 || j < 0 || r.Cell(i, j).Failed != "" {
		return nil
	}
	hit := r.Cell(i, j).HitRate
	return &hit
}

// rankAgreement correlates the simulated hit rate with each metric over the cells
// that have one; none with fewer than two such cells. seed seeds τ's bootstrap.
func rankAgreement(cells []validatedCell, seed uint64) []agreement {
	var hit []float64
	var with []*validate.Cell
	for i := range cells {
		if cells[i].SimulatedHitRate != nil {
			hit = append(hit, *cells[i].SimulatedHitRate)
			with = append(with, &cells[i].Cell)
		}
	}
	if len(with) < 2 {
		return nil
	}
	var out []agreement
	for _, m := range metrics {
		y := make([]float64, len(with))
		for i, c := range with {
			y[i] = m.get(c)
		}
		out = append(out, agreement{Metric: m.name, Cells: len(with), KendallTau: defined(rank.KendallTau(hit, y)),
			KendallTauCI: tauInterval(hit, with, m.name, seed), Spearman: defined(rank.Spearman(hit, y))})
	}
	return out
}

func cellKey(policy, budget string) string { return policy + "\x00" + budget }

// maxStateBytes bounds the state file read on resume: a cell's line is under
// 1 KiB, so this is room for a quarter of a million cells.
const maxStateBytes = 256 << 20

// readCells reads the finished cells of a state file; a missing file has none. A
// torn last line (an interrupted write, a full disk) is cut off the file, so that
// the next cell appended starts a line of its own.
func readCells(path string) (map[string]validate.Cell, error) {
	cells := map[string]validate.Cell{}
	if path == "" {
		return cells, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return cells, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("state %s: larger than %d MiB; is it a state file?", path, maxStateBytes>>20)
	}
	complete := 0 // bytes of whole, readable lines
	for line := 1; complete < len(data); line++ {
		text, rest, ended := bytes.Cut(data[complete:], []byte("\n"))
		var c validate.Cell
		err := json.Unmarshal(text, &c)
		if !ended || (err != nil && len(bytes.TrimSpace(rest)) == 0) {
			break // the last line, torn by an interruption
		}
		if err != nil {
			return nil, fmt.Errorf("state %s:%d: %w", path, line, err)
		}
		cells[cellKey(c.Policy, c.Budget)] = c
		complete += len(text) + 1
	}
	if complete < len(data) {
		if err := os.Truncate(path, int64(complete)); err != nil {
			return nil, fmt.Errorf("state %s: cutting off the torn last line: %w", path, err)
		}
	}
	return cells, nil
}

// appendCell adds a finished cell to the state file.
func appendCell(path string, c *validate.Cell) error {
	if path == "" {
		return nil
	}
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("state %s: %w", path, err)
	}
	return f.Close()
}

// validationColumns are the table's columns, after policy and budget.
var validationColumns = []string{"sim hit", "R-1 ref", "R-2 ref", "R-L ref", "R-1 full", "R-2 full", "R-L full",
	"agree", "NLL", "tok/s", "policy µs/tok", "slots µs/tok", "evict %", "peak KV MiB"}

func (c *validatedCell) row() []string {
	f := func(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	hit := "-"
	if c.SimulatedHitRate != nil {
		hit = f(100**c.SimulatedHitRate, 2) + "%"
	}
	return []string{c.Policy, c.Budget, hit, f(c.Rouge1Ref, 4), f(c.Rouge2Ref, 4), f(c.RougeLRef, 4),
		f(c.Rouge1Full, 4), f(c.Rouge2Full, 4), f(c.RougeLFull, 4), f(c.Agreement, 4), f(c.NLL, 4),
		f(c.TokensPerSecond, 1), f(c.PolicyMicrosPerToken, 1), f(c.SlotMicrosPerToken, 1), f(100*c.EvictionShare, 2),
		f(float64(c.PeakKVBytes)/(1<<20), 3)}
}

// writeValidation renders res as a table, CSV, JSON or Markdown.
func writeValidation(w io.Writer, res *validation, format string) error {
	header := append([]string{"policy", "budget"}, validationColumns...)
	rows := make([][]string, len(res.Cells))
	for i := range res.Cells {
		rows[i] = res.Cells[i].row()
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(append(header, intervalColumns()...))
		for i := range rows {
			cw.Write(append(rows[i], res.Cells[i].intervalFields()...))
		}
		cw.Flush()
		return cw.Error()
	}
	markdown := format == "markdown"
	if err := report.WriteTable(w, header, rows, markdown, 2); err != nil {
		return err
	}
	if err := writeIntervals(w, res, markdown); err != nil {
		return err
	}
	if len(res.Agreement) == 0 {
		return nil
	}
	heading(w, markdown, fmt.Sprintf("Simulated hit rate against each validated metric, over %d cells (NLL: lower is better, so a good ranking shows negative; "+
		"τ's 95%% CI: percentile bootstrap over samples, %d replicates)", res.Agreement[0].Cells, tauBootstrapReps))
	rows = rows[:0]
	for _, a := range res.Agreement {
		ci := "-"
		if a.KendallTauCI != nil {
			ci = fmt.Sprintf("[%.3f, %.3f]", a.KendallTauCI.Lo, a.KendallTauCI.Hi)
		}
		rows = append(rows, []string{a.Metric, formatCorrelation(a.KendallTau), ci, formatCorrelation(a.Spearman)})
	}
	return report.WriteTable(w, []string{"metric", "Kendall τ", "τ 95% CI", "Spearman ρ"}, rows, markdown, 1)
}
