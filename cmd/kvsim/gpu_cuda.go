//go:build cuda

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/cuda"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
)

const gpuUsage = `Usage: kvsim gpu <subcommand> [flags]

Diagnostics of the CUDA backend (scripts/gpu-check.sh runs them all):
  info     the device, and its measured copy bandwidth
  compare  run a checkpoint on the CUDA and CPU backends and report their differences
  bench    time prefill and decode of a random OPT-shaped model built on the device
`

func runGPU(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, gpuUsage)
		return nil
	}
	switch args[0] {
	case "info":
		return runGPUInfo(e, args[1:])
	case "compare":
		return runGPUCompare(e, args[1:])
	case "bench":
		return runGPUBench(e, args[1:])
	}
	return usageError{fmt.Errorf("gpu: unknown subcommand %q (want info, compare or bench)", args[0])}
}

// writeJSON prints v as one line of JSON, the form scripts/gpu-check.sh reads.
func writeJSON(e *env, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// bandwidthBytes is the size of each buffer of the copy-bandwidth measurement: far
// larger than any L2 cache.
const bandwidthBytes = 1 << 30

func runGPUInfo(e *env, args []string) error {
	fs := newFlags(e, "gpu info", "gpu info [flags]",
		"Prints the device's name, compute capability, memory and device-to-device copy\n"+
			"bandwidth (bytes read plus written, median of 10 copies of 1 GiB) as JSON.")
	ordinal := fs.Int("device", 0, "CUDA device `ordinal`")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, err := cuda.Open(*ordinal)
	if err != nil {
		return err
	}
	defer d.Close()
	bw, err := d.CopyBandwidth(bandwidthBytes, 10)
	if err != nil {
		return err
	}
	return writeJSON(e, map[string]any{
		"device": d.Name, "compute_capability": fmt.Sprintf("%d.%d", d.ComputeCapability[0], d.ComputeCapability[1]),
		"multiprocessors": d.Multiprocessors, "memory_bytes": d.TotalMemory, "copy_bandwidth_bytes_per_s": bw,
	})
}

func runGPUBench(e *env, args []string) error {
	fs := newFlags(e, "gpu bench", "gpu bench [flags]",
		"Builds a random OPT-shaped model on the device (no checkpoint needed), runs one\n"+
			"prefill and greedy decode steps, and prints the times against the HBM floor\n"+
			"(weights plus KV bytes read per decode token ÷ measured copy bandwidth) as JSON.\n"+
			"With -policy it then decodes again with that builtin policy deciding evictions\n"+
			"inside the model, as validate does, and adds its decode rate and overhead.")
	ordinal := fs.Int("device", 0, "CUDA device `ordinal`")
	preset := fs.String("preset", "opt-1.3b", "OPT shape, one of "+fmt.Sprint(opt.Names()))
	layers := fs.Int("layers", 0, "keep only `N` layers (0: the preset's)")
	prompt := fs.Int("prompt", 512, "prompt tokens")
	gen := fs.Int("gen", 64, "decode steps")
	attention := fs.Bool("attention", false, "copy every layer's attention to the host at each decode step, as validate does")
	seed := fs.Uint64("seed", 1, "seed of the weights and the prompt")
	policyName := fs.String("policy", "", "also decode with this builtin `POLICY` in the loop (auv, h2o, window, ...)")
	budget := fs.Int("budget", 0, "tokens per head the policy keeps (0: 10% of the prompt)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *budget < 0:
		return usageError{fmt.Errorf("gpu bench: -budget %d: want tokens per head, or 0 for 10%% of the prompt", *budget)}
	case *budget > 0 && *policyName == "":
		return usageError{fmt.Errorf("gpu bench: -budget needs -policy")}
	}
	var newPolicy policies.New
	if *policyName != "" {
		var ok bool
		if newPolicy, ok = builtin.Lookup(*policyName); !ok {
			return usageError{fmt.Errorf("gpu bench: -policy %q: not a builtin (%s)", *policyName, strings.Join(builtin.Names(), ", "))}
		}
	}
	if *budget == 0 {
		*budget = max(1, *prompt/10)
	}
	cfg, err := checkpoint.SynthOptions{Preset: *preset, NumHiddenLayers: *layers}.Config()
	if err != nil {
		return usageError{fmt.Errorf("gpu bench: %w", err)}
	}
	b, err := cuda.NewRandom(cfg, cuda.Options{Device: *ordinal}, *seed)
	if err != nil {
		return err
	}
	defer b.Close()
	d := b.Device()
	bw, err := d.CopyBandwidth(bandwidthBytes, 10)
	if err != nil {
		return err
	}
	r, err := cuda.Bench(b, cuda.BenchOptions{Prompt: *prompt, Gen: *gen, Seed: *seed, Attention: *attention, Bandwidth: bw})
	if err != nil {
		return err
	}
	seconds := func(t time.Duration) float64 { return t.Seconds() }
	report := map[string]any{
		"preset": *preset, "layers": cfg.NumHiddenLayers, "hidden": cfg.HiddenSize, "heads": cfg.NumAttentionHeads,
		"device": d.Name, "copy_bandwidth_bytes_per_s": bw, "weight_bytes": b.WeightBytes(), "cache_bytes": r.CacheBytes,
		"prompt_tokens": *prompt, "decode_steps": *gen, "attention_to_host": *attention,
		"prefill_s": seconds(r.Prefill), "prefill_tokens_per_s": float64(*prompt) / seconds(r.Prefill),
		"decode_median_s": seconds(r.DecodeMedian), "decode_mean_s": seconds(r.DecodeMean),
		"decode_tokens_per_s":    1 / seconds(r.DecodeMedian),
		"decode_bytes_per_token": r.BytesPerToken, "decode_floor_s": seconds(r.DecodeFloor),
		"floor_ratio":        seconds(r.DecodeFloor) / seconds(r.DecodeMedian),
		"launches_per_token": r.PerToken.Launches, "uploads_per_token": r.PerToken.Uploads,
		"downloads_per_token": r.PerToken.Downloads, "syncs_per_token": r.PerToken.Syncs,
	}
	if newPolicy != nil {
		rng := rand.New(rand.NewPCG(*seed, 0))
		tokens := make([]int32, *prompt)
		for i := range tokens {
			tokens[i] = int32(rng.IntN(cfg.VocabSize))
		}
		build := func() (policies.Policy, error) { return newPolicy(policies.NewParams(nil)) }
		d, err := validate.Decode(context.Background(), gpu.New(b), tokens, build,
			validate.Options{Budget: *budget, MaxNew: *gen, IgnoreEOS: true, Seed: *seed})
		if err != nil {
			return fmt.Errorf("gpu bench: -policy %s: %w", *policyName, err)
		}
		n := float64(len(d.Tokens))
		report["policy"], report["budget"], report["policy_capacity"] = *policyName, *budget, d.Capacity
		report["policy_decode_tokens_per_s"] = n / seconds(d.Decode)
		report["policy_us_per_token"] = seconds(d.PolicyTime) * 1e6 / n
		report["slot_us_per_token"] = seconds(d.SlotTime) * 1e6 / n
		report["eviction_share"] = seconds(d.PolicyTime+d.SlotTime) / seconds(d.Decode)
		report["policy_peak_kv_bytes"] = d.PeakBytes
	}
	return writeJSON(e, report)
}

func runGPUCompare(e *env, args []string) error {
	fs := newFlags(e, "gpu compare", "gpu compare [flags] -model DIR",
		"Runs a random prompt and teacher-forced greedy decoding of a checkpoint on the CPU\n"+
			"backend (the reference) and on the CUDA backend, observing every layer, then the\n"+
			"same with eviction into compensation slots, and prints the largest differences\n"+
			"as JSON. With -dump it also writes the tokens and both backends' logits.")
	ordinal := fs.Int("device", 0, "CUDA device `ordinal`")
	model := fs.String("model", "", "checkpoint `DIR`")
	promptLen := fs.Int("prompt", 48, "prompt tokens (random)")
	gen := fs.Int("gen", 16, "decode steps")
	budget := fs.Int("budget", 0, "tokens kept per head in the eviction run (0: half the prompt)")
	seed := fs.Uint64("seed", 1, "seed of the prompt")
	tolerance := fs.Float64("tolerance", 1e-2, "fail when the logits' relative error, or an attention probability's difference, exceeds `X`")
	dump := fs.String("dump", "", "write tokens.json, logits-cpu.f32 and logits-cuda.f32 ([steps][vocab] little-endian float32) into `DIR`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usageError{fmt.Errorf("gpu compare: -model DIR is required")}
	}
	m, err := checkpoint.Load(*model)
	if err != nil {
		return err
	}
	defer m.Close()
	ref, err := cpu.New(m, cpu.Options{})
	if err != nil {
		return err
	}
	defer ref.Close()
	test, err := cuda.New(m, cuda.Options{Device: *ordinal})
	if err != nil {
		return err
	}
	defer test.Close()
	rng := rand.New(rand.NewPCG(*seed, 0))
	prompt := make([]int32, *promptLen)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(m.Config.VocabSize))
	}
	if *budget == 0 {
		*budget = *promptLen / 2
	}
	r, err := cuda.CompareBackends(ref, test, cuda.CompareOptions{Prompt: prompt, Gen: *gen, Budget: *budget, KeepLogits: true})
	if err != nil {
		return err
	}
	if *dump != "" {
		if err := dumpComparison(*dump, prompt, r); err != nil {
			return err
		}
	}
	disagreements := r.ClearDisagreements()
	err = writeJSON(e, map[string]any{
		"model": *model, "device": test.Device().Name, "prompt_tokens": *promptLen, "decode_steps": *gen, "budget": *budget,
		"steps": r.Steps, "logits_rel_err": r.LogitsRelErr, "evict_logits_rel_err": r.EvictLogitsRelErr,
		"qkv_rel_err": r.QKVRelErr, "probs_max_abs_err": r.ProbsMaxAbsErr,
		"tokens_agree": r.TokensAgree, "tokens": len(r.RefTokens), "tokens_clear_disagreements": disagreements,
		"cpu_tokens": r.RefTokens, "cuda_tokens": r.TestTokens,
	})
	switch {
	case err != nil:
		return err
	case max(r.LogitsRelErr, r.EvictLogitsRelErr, r.ProbsMaxAbsErr) > *tolerance:
		return fmt.Errorf("gpu compare: CUDA differs from CPU beyond the tolerance %g", *tolerance)
	case disagreements > 0:
		return fmt.Errorf("gpu compare: greedy tokens differ beyond near-ties at %d steps", disagreements)
	}
	return nil
}

// dumpComparison writes what the transformers check of scripts/gpu-check.sh reads.
func dumpComparison(dir string, prompt []int32, r *cuda.CompareResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tokens, err := json.Marshal(map[string]any{"prompt": prompt, "inputs": r.Inputs, "cpu_greedy": r.RefTokens, "cuda_greedy": r.TestTokens})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.json"), tokens, 0o644); err != nil {
		return err
	}
	for name, rows := range map[string][][]float32{"logits-cpu.f32": r.RefLogits, "logits-cuda.f32": r.TestLogits} {
		var b []byte
		for _, row := range rows {
			for _, x := range row {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
