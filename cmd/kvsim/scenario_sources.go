package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvsim/kvsim/abi/source"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/models"
	"github.com/kvsim/kvsim/policies"

	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/scenario"
	"github.com/kvsim/kvsim/tracecap"
)

// scenarioSources opens a scenario's traces for replay: those its [capture] table
// captures on the fly (into a temporary directory), then its trace files and
// synthetic samples. close releases them all and removes the captured files.
func scenarioSources(ctx context.Context, e *env, sc *scenario.Scenario, threads int, progress string) (sources []sim.Source, close func(), err error) {
	var captured []sim.Source
	tmp := ""
	close = func() {
		scenario.Close(captured)
		scenario.Close(sources)
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	if sc.Capture != nil {
		if tmp, err = os.MkdirTemp("", "kvsim-capture-*"); err != nil {
			return nil, close, err
		}
		paths, err := captureScenario(ctx, e, sc, tmp, threads, progress)
		if err != nil {
			return nil, close, err
		}
		for _, p := range paths {
			t, err := kvtrace.Open(p)
			if err != nil {
				return nil, close, err
			}
			captured = append(captured, t)
		}
		// The traces are mapped now: on unix the files can go at once, so that a run
		// killed later (by a closed pipe, say) leaves nothing behind.
		if os.RemoveAll(tmp) == nil {
			tmp = ""
		}
	}
	if sources, err = sc.Sources(); err != nil {
		return nil, close, err
	}
	sources = append(captured, sources...)
	captured = nil // now in sources
	return sources, close, nil
}

// captureScenario runs the [capture] table into dir and returns the trace paths,
// in dataset order. It reports on stderr what it captured and how long it took.
func captureScenario(ctx context.Context, e *env, sc *scenario.Scenario, dir string, threads int, progress string) ([]string, error) {
	c := sc.Capture
	data, records, om, modelDir, err := openDataset(sc, "capture", &c.Dataset, c.Device, threads)
	if err != nil {
		return nil, err
	}
	defer om.Close()
	opts := tracecap.Options{Template: c.Template, MaxPromptTokens: c.MaxPromptTokens, GenTokens: c.GenTokens,
		IgnoreEOS: c.IgnoreEOS, Model: om.model.Config.NameOrPath, Dataset: filepath.Base(data)}
	if opts.Model == "" {
		opts.Model = filepath.Base(filepath.Clean(modelDir))
	}
	capturer, err := tracecap.New(om.engine, om.tok, opts)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: [capture]: %w", sc.Path, err)
	}
	jobs, err := capturer.Plan(records, dir)
	if err != nil {
		return nil, err
	}
	sum, err := captureJobs(ctx, e, io.Discard, capturer, jobs, progress)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "captured %d %s from %s on %s: %d tokens in %.2f s (%.3f s per sample)\n",
		sum.captured, plural(sum.captured, "sample"), opts.Model, c.Device, sum.tokens, sum.elapsed.Seconds(),
		sum.elapsed.Seconds()/float64(max(1, sum.captured)))
	paths := make([]string, len(jobs))
	for i := range jobs {
		paths[i] = jobs[i].Path
	}
	return paths, nil
}

// openDataset reads the records of a [capture] or [validate] table (table names it
// in errors), loads its model and starts it on device, so that a bad path or device
// fails before anything slow runs. It returns the resolved data path and model
// directory too; the caller closes the model.
func openDataset(sc *scenario.Scenario, table string, d *scenario.Dataset, device string, threads int) (data string, records []dataset.Sample, om *optModel, modelDir string, err error) {
	if data, err = datasetPath(sc, d.Data); err != nil {
		return "", nil, nil, "", err
	}
	fields := dataset.DefaultFields
	for _, f := range []struct {
		dst *string
		v   string
	}{{&fields.Document, d.DocumentField}, {&fields.Summary, d.SummaryField}, {&fields.ID, d.IDField}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if records, err = dataset.ReadJSONL(data, fields, d.Offset, d.Samples); err != nil {
		return "", nil, nil, "", err
	}
	if modelDir, err = datasetPath(sc, d.Model); err != nil {
		return "", nil, nil, "", err
	}
	if om, err = openModel(modelDir); err != nil {
		return "", nil, nil, "", fmt.Errorf("scenario %s: [%s] model: %w", sc.Path, table, err)
	}
	if err := om.start(device, threads); err != nil {
		om.Close()
		return "", nil, nil, "", err
	}
	return data, records, om, modelDir, nil
}

// datasetPath resolves a model or data path of a [capture] or [validate] table:
// builtin: names are written out from the binary (models.Resolve), others are
// relative to the scenario's directory.
func datasetPath(sc *scenario.Scenario, p string) (string, error) {
	if !strings.HasPrefix(p, models.Scheme) {
		return sc.RelativePath(p), nil
	}
	path, err := models.Resolve(p)
	if err != nil {
		return "", fmt.Errorf("scenario %s: %w", sc.Path, err)
	}
	return path, nil
}

// policyOpener opens a scenario's policy sources through source.Open; a
// [policy.limits] table becomes the WASM host's options.
func policyOpener(ctx context.Context) scenario.Opener {
	return func(src, dir string, limits *scenario.Limits) (policies.New, error) {
		return source.Open(ctx, src, dir, wasmSandbox(limits))
	}
}

// wasmSandbox turns a [policy.limits] table into the WASM host's options: unset
// limits keep the host's defaults, and deadline_ms = 0 turns the deadline off.
func wasmSandbox(l *scenario.Limits) *wasmhost.Options {
	if l == nil {
		return nil
	}
	var o wasmhost.Options
	if l.MemoryPages != nil {
		o.MemoryPages = uint32(*l.MemoryPages)
	}
	if l.Fuel != nil {
		o.Fuel = *l.Fuel
	}
	if d := l.DeadlineMS; d != nil {
		o.Deadline = time.Duration(*d) * time.Millisecond
		if *d == 0 {
			o.Deadline = wasmhost.NoDeadline
		}
	}
	return &o
}
