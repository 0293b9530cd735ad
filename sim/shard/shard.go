// Package shard splits a scenario's samples over independent workers (a Slurm
// array, a Kubernetes Indexed Job, plain processes) and merges their results.
//
// Shard i of n takes the samples whose index k in the scenario's order (for replay:
// its sorted trace files, then its synthetic samples; for capture: the dataset's
// record number) has k mod n = i. A shard's content so depends on nothing but the
// scenario, i and n, and never on which other shards ran. A shard writes a File:
// its job-level sums (sim.Part), or for validate its cells' runs of each sample
// (a Payload, which package validate defines), with the scenario's content hash,
// kvsim's version and its identity. Merge refuses files of different scenarios, versions or
// splits, and files that overlap, and names the shards that are missing.
package shard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/internal/atomicfile"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

// MaxCount bounds n in i/n: more shards than this is a typo, not a cluster.
const MaxCount = 1 << 20

// Spec is shard Index of Count.
type Spec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// String is "i/n", as the -shard flag takes it.
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Has reports whether sample k belongs to the shard.
func (s Spec) Has(k int) bool { return k%s.Count == s.Index }

// Slurm's array variables, and kvsim's own for a rerun of some tasks only.
const (
	EnvTaskID    = "SLURM_ARRAY_TASK_ID"
	EnvTaskCount = "SLURM_ARRAY_TASK_COUNT"
	EnvTaskMin   = "SLURM_ARRAY_TASK_MIN"
	EnvTaskMax   = "SLURM_ARRAY_TASK_MAX"
	EnvShards    = "KVSIM_SHARDS"
)

// Parse reads "i/n", or "slurm": i from SLURM_ARRAY_TASK_ID and n from KVSIM_SHARDS
// when set, else from SLURM_ARRAY_TASK_COUNT, which only an array 0-(n-1) gives
// right (a rerun of task 2 alone, --array=2, has a count of 1). getenv is os.Getenv
// outside tests.
func Parse(s string, getenv func(string) string) (Spec, error) {
	if s == "slurm" {
		return fromSlurm(getenv)
	}
	is, ns, ok := strings.Cut(s, "/")
	i, errI := strconv.Atoi(is)
	n, errN := strconv.Atoi(ns)
	if !ok || errI != nil || errN != nil {
		return Spec{}, fmt.Errorf("shard %q: want i/n, like 0/4, or slurm", s)
	}
	return check(Spec{i, n}, s)
}

func check(sp Spec, from string) (Spec, error) {
	if sp.Count < 1 || sp.Count > MaxCount || sp.Index < 0 || sp.Index >= sp.Count {
		return Spec{}, fmt.Errorf("shard %s: want 0 ≤ i < n ≤ %d", from, MaxCount)
	}
	return sp, nil
}

func fromSlurm(getenv func(string) string) (Spec, error) {
	id := getenv(EnvTaskID)
	if id == "" {
		return Spec{}, fmt.Errorf("shard slurm: %s is not set: run inside an sbatch --array job, or give -shard i/n", EnvTaskID)
	}
	i, err := strconv.Atoi(id)
	if err != nil {
		return Spec{}, fmt.Errorf("shard slurm: %s=%q is not a number", EnvTaskID, id)
	}
	if v := getenv(EnvShards); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Spec{}, fmt.Errorf("shard slurm: %s=%q is not a number", EnvShards, v)
		}
		return check(Spec{i, n}, fmt.Sprintf("%d/%d (%s/%s)", i, n, EnvTaskID, EnvShards))
	}
	count, lo, hi := getenv(EnvTaskCount), getenv(EnvTaskMin), getenv(EnvTaskMax)
	n, err := strconv.Atoi(count)
	if err != nil {
		return Spec{}, fmt.Errorf("shard slurm: %s=%q is not a number; set %s to the number of shards", EnvTaskCount, count, EnvShards)
	}
	if lo != "0" || hi != strconv.Itoa(n-1) {
		return Spec{}, fmt.Errorf("shard slurm: the array is %s-%s with %d tasks, not 0-%d: set %s to the number of shards (for a rerun of some tasks, say)",
			lo, hi, n, n-1, EnvShards)
	}
	return check(Spec{i, n}, fmt.Sprintf("%d/%d (%s/%s)", i, n, EnvTaskID, EnvTaskCount))
}

// Version is the kvsim build that computes a shard: the module version and, when
// the binary was built from a git checkout, the commit (with "+dirty" for
// uncommitted changes), else for a development build the hash of the executable.
// Shards of different versions may compute differently.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	switch {
	case rev != "":
		v += " " + rev + dirty
	case v == "(devel)":
		v += " " + executableHash()
	}
	return v
}

// executableHash fingerprints a development build that carries no commit (built
// with -buildvcs=false, or outside git): the SHA-256 of its executable.
func executableHash() string {
	path, err := os.Executable()
	if err != nil {
		return "unidentified"
	}
	f, err := os.Open(path)
	if err != nil {
		return "unidentified"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unidentified"
	}
	return "binary " + hex.EncodeToString(h.Sum(nil))[:16]
}

// Sample names a sample a shard covered.
type Sample struct {
	Index int    `json:"index"` // in the scenario's order
	Name  string `json:"name"`  // the trace file, or synthetic:PRESET#K
	ID    string `json:"id"`    // the trace's sample_id
}

// Format names the file format.
const Format = "kvsim-shard/1"

// Payload is a validate shard's result (validate.Part): package shard carries it
// and checks its samples without depending on the validate stage.
type Payload interface {
	comparable             // a nil Payload is a replay shard's
	TotalSamples() int     // in the whole validation
	CoveredSamples() []int // run by this shard
}

// File is one shard's result, as `kvsim replay -shard` (Part) or `kvsim validate
// -shard` (Validation) writes it.
type File[V Payload] struct {
	Format string `json:"format"`
	Kvsim  string `json:"kvsim"`
	// Scenario is the scenario's content hash (scenario.ContentHash).
	Scenario string   `json:"scenario"`
	Title    string   `json:"title,omitempty"`
	Shard    Spec     `json:"shard"`
	Samples  []Sample `json:"samples"`
	// Part is a replay shard's result, Validation a validate shard's.
	Part       *sim.Part `json:"part,omitempty"`
	Validation V         `json:"validation,omitempty"`
}

// kind names what the file shards.
func (f *File[V]) kind() string {
	if f.validation() {
		return "validate"
	}
	return "replay"
}

// total is the number of samples of the whole run, and covered those of the shard.
func (f *File[V]) total() int {
	if f.validation() {
		return f.Validation.TotalSamples()
	}
	return f.Part.Header.Samples
}

func (f *File[V]) covered() []int {
	if f.validation() {
		return f.Validation.CoveredSamples()
	}
	return f.Part.Samples
}

// validation reports whether f is a validate shard.
func (f *File[V]) validation() bool {
	var none V
	return f.Validation != none
}

// Write writes f to path atomically.
func Write[V Payload](path string, f *File[V]) error {
	return atomicfile.Write(path, func(w io.Writer) error { return json.NewEncoder(w).Encode(f) })
}

// Read reads and checks a shard file, of either kind.
func Read[V Payload](path string) (*File[V], error) {
	r, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	defer r.Close()
	var f File[V]
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("shard %s: %w", path, err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("shard %s: format %q, want %q (a file of `kvsim replay -shard`)", path, f.Format, Format)
	}
	if _, err := check(f.Shard, f.Shard.String()); err != nil {
		return nil, fmt.Errorf("shard %s: %w", path, err)
	}
	if (f.Part == nil) != f.validation() || (f.Part != nil && f.Part.Header == nil) {
		return nil, fmt.Errorf("shard %s: want a replay part with its header, or a validation part", path)
	}
	if n := f.total(); n < 1 || n > host.MaxSamples {
		return nil, fmt.Errorf("shard %s: %d samples, want 1 to %d", path, n, host.MaxSamples)
	}
	for _, k := range f.covered() {
		if k < 0 || !f.Shard.Has(k) {
			return nil, fmt.Errorf("shard %s: sample %d does not belong to shard %s", path, k, f.Shard)
		}
	}
	return &f, nil
}

// MissingError names the shards that no file holds, so that only they are rerun.
type MissingError struct {
	Shards []Spec
	// Samples are the samples they would have replayed.
	Samples []int
}

func (e *MissingError) Error() string {
	var names, ids []string
	for _, s := range e.Shards {
		names = append(names, s.String())
		ids = append(ids, strconv.Itoa(s.Index))
	}
	return fmt.Sprintf("missing %d of %d shards: %s (samples %v); rerun only those (-shard %s; in a Slurm array, sbatch --array=%s with %s=%d)",
		len(e.Shards), e.Shards[0].Count, strings.Join(names, ", "), e.Samples, names[0], strings.Join(ids, ","), EnvShards, e.Shards[0].Count)
}

// Merge checks that files are the replay shards of one scenario, by one kvsim
// version and one split, each once, and that none is missing (a *MissingError names
// the ones that are), then merges them into the Result one replay of the scenario
// gives. names label the files in errors.
func Merge[V Payload](files []*File[V], names []string) (*sim.Result, error) {
	if err := checkSet(files, names, "replay"); err != nil {
		return nil, err
	}
	parts := make([]*sim.Part, len(files))
	for i, f := range files {
		parts[i] = f.Part
	}
	return sim.MergeParts(parts, names)
}

// Validations checks that files are the validate shards of one scenario, version
// and split, each once and none missing, like Merge, and returns their parts for
// package validate to merge.
func Validations[V Payload](files []*File[V], names []string) ([]V, error) {
	if err := checkSet(files, names, "validate"); err != nil {
		return nil, err
	}
	parts := make([]V, len(files))
	for i, f := range files {
		parts[i] = f.Validation
	}
	return parts, nil
}

// checkSet checks that files are kind shards of one scenario, version and split,
// each once and none missing.
func checkSet[V Payload](files []*File[V], names []string, kind string) error {
	if len(files) == 0 {
		return errors.New("merge: no shard files")
	}
	first := files[0]
	holder := make([]string, first.Shard.Count)
	for i, f := range files {
		switch {
		case f.kind() != kind:
			return fmt.Errorf("merge: %s is a %s shard, not a %s shard like %s", names[i], f.kind(), kind, names[0])
		case f.Scenario != first.Scenario:
			return fmt.Errorf("merge: %s and %s are shards of different scenarios (content hash %.12s… and %.12s…)",
				names[0], names[i], first.Scenario, f.Scenario)
		case f.Kvsim != first.Kvsim:
			return fmt.Errorf("merge: %s and %s were computed by different kvsim versions (%s and %s)", names[0], names[i], first.Kvsim, f.Kvsim)
		case f.Shard.Count != first.Shard.Count:
			return fmt.Errorf("merge: %s is shard %s and %s shard %s: splits in %d and %d overlap",
				names[0], first.Shard, names[i], f.Shard, first.Shard.Count, f.Shard.Count)
		case holder[f.Shard.Index] != "":
			return fmt.Errorf("merge: %s and %s are both shard %s", holder[f.Shard.Index], names[i], f.Shard)
		}
		holder[f.Shard.Index] = names[i]
	}
	var missing MissingError
	for i, h := range holder {
		if h == "" {
			missing.Shards = append(missing.Shards, Spec{i, first.Shard.Count})
		}
	}
	if len(missing.Shards) == 0 {
		return nil
	}
	for k := 0; k < first.total(); k++ {
		if holder[k%first.Shard.Count] == "" {
			missing.Samples = append(missing.Samples, k)
		}
	}
	return &missing
}
