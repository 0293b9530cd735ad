package shard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		flag string
		env  map[string]string
		want Spec
		err  string
	}{
		{flag: "0/1", want: Spec{0, 1}},
		{flag: "3/4", want: Spec{3, 4}},
		{flag: "4/4", err: "shard 4/4: want 0 ≤ i < n ≤ 1048576"},
		{flag: "-1/4", err: "shard -1/4: want 0 ≤ i < n"},
		{flag: "1/0", err: "shard 1/0: want 0 ≤ i < n"},
		{flag: "1", err: `shard "1": want i/n, like 0/4, or slurm`},
		{flag: "a/4", err: `shard "a/4": want i/n`},
		{flag: "slurm", env: map[string]string{EnvTaskID: "2", EnvTaskCount: "4", EnvTaskMin: "0", EnvTaskMax: "3"}, want: Spec{2, 4}},
		// A rerun of task 2 alone: Slurm's count is 1, so KVSIM_SHARDS must give n.
		{flag: "slurm", env: map[string]string{EnvTaskID: "2", EnvTaskCount: "1", EnvTaskMin: "2", EnvTaskMax: "2"},
			err: "shard slurm: the array is 2-2 with 1 tasks, not 0-0: set KVSIM_SHARDS"},
		{flag: "slurm", env: map[string]string{EnvTaskID: "2", EnvTaskCount: "1", EnvTaskMin: "2", EnvTaskMax: "2", EnvShards: "4"}, want: Spec{2, 4}},
		{flag: "slurm", env: map[string]string{EnvTaskID: "5", EnvShards: "4"}, err: "shard 5/4 (SLURM_ARRAY_TASK_ID/KVSIM_SHARDS): want 0 ≤ i < n"},
		{flag: "slurm", env: map[string]string{}, err: "shard slurm: SLURM_ARRAY_TASK_ID is not set"},
		{flag: "slurm", env: map[string]string{EnvTaskID: "x"}, err: `shard slurm: SLURM_ARRAY_TASK_ID="x" is not a number`},
		{flag: "slurm", env: map[string]string{EnvTaskID: "1"}, err: `shard slurm: SLURM_ARRAY_TASK_COUNT="" is not a number`},
	} {
		got, err := Parse(tc.flag, env(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %v: error %v, want %q", tc.flag, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %v: %v, %v; want %v", tc.flag, tc.env, got, err, tc.want)
		}
	}
}

// TestSplit: every sample lands in exactly one shard, round robin by index, and a
// shard's samples do not depend on the others.
func TestSplit(t *testing.T) {
	var got [3][]int
	for k := 0; k < 8; k++ {
		for i := range got {
			if (Spec{i, 3}).Has(k) {
				got[i] = append(got[i], k)
			}
		}
	}
	want := [3][]int{{0, 3, 6}, {1, 4, 7}, {2, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("split of 8 samples in 3: %v, want %v", got, want)
	}
}

// shards replays a small synthetic scenario in n shards and writes them, returning
// the paths.
// testFile is a shard file as the command line reads it.
type testFile = File[*validate.Part]

func shards(t testing.TB, dir string, n int, seed uint64) []string {
	t.Helper()
	var sources []sim.Source
	for k := 0; k < 5; k++ {
		tr, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 20, GenLen: 4, Sample: k, Seed: seed, WithV: true})
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, tr)
	}
	newPolicy, _ := builtin.Lookup("h2o")
	specs := []sim.PolicySpec{{Name: "h2o", New: func() (policies.Policy, error) { return newPolicy(policies.NewParams(nil)) }}}
	var paths []string
	for i := 0; i < n; i++ {
		sp := Spec{i, n}
		part, err := sim.ReplayPart(context.Background(), sources, specs, sim.Options{Budgets: []host.Budget{{Tokens: 4}}, Seed: seed, Threads: 1}, sp.Has)
		if err != nil {
			t.Fatal(err)
		}
		f := &testFile{Format: Format, Kvsim: "v-test", Scenario: fmt.Sprint("hash", seed), Shard: sp, Part: part}
		path := filepath.Join(dir, fmt.Sprintf("%d-of-%d.json", i, n))
		if err := Write(path, f); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	return paths
}

func read(t *testing.T, paths ...string) []*testFile {
	t.Helper()
	var out []*testFile
	for _, p := range paths {
		f, err := Read[*validate.Part](p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func TestMergeRefuses(t *testing.T) {
	dir := t.TempDir()
	four := shards(t, dir, 4, 1)
	three := shards(t, dir, 3, 1)
	other := shards(t, t.TempDir(), 4, 2)

	if _, err := Merge(read(t, four...), four); err != nil {
		t.Fatalf("a complete set: %v", err)
	}

	_, err := Merge(read(t, four[3], four[0]), []string{"d", "a"})
	var missing *MissingError
	if !errors.As(err, &missing) || !reflect.DeepEqual(missing.Shards, []Spec{{1, 4}, {2, 4}}) || !reflect.DeepEqual(missing.Samples, []int{1, 2}) {
		t.Fatalf("missing: %v", err)
	}
	const wantMissing = "missing 2 of 4 shards: 1/4, 2/4 (samples [1 2]); rerun only those (-shard 1/4; in a Slurm array, sbatch --array=1,2 with KVSIM_SHARDS=4)"
	if err.Error() != wantMissing {
		t.Errorf("missing:\n got  %s\n want %s", err, wantMissing)
	}

	for _, tc := range []struct {
		files []*testFile
		names []string
		want  string
	}{
		{read(t, four[0], other[1]), []string{"a", "b"}, "merge: a and b are shards of different scenarios (content hash hash1… and hash2…)"},
		{read(t, four[0], four[1], four[1]), []string{"a", "b", "c"}, "merge: b and c are both shard 1/4"},
		{read(t, four[0], three[1]), []string{"a", "b"}, "merge: a is shard 0/4 and b shard 1/3: splits in 4 and 3 overlap"},
	} {
		if _, err := Merge(tc.files, tc.names); err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
	versions := read(t, four...)
	versions[2].Kvsim = "v-other"
	if _, err := Merge(versions, four); err == nil || !strings.Contains(err.Error(), "were computed by different kvsim versions (v-test and v-other)") {
		t.Errorf("versions: %v", err)
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	path := shards(t, dir, 2, 1)[1]
	f := read(t, path)[0]
	f.Part.Samples = append(f.Part.Samples, 2)
	bad := filepath.Join(dir, "bad.json")
	if err := Write(bad, f); err != nil {
		t.Fatal(err)
	}
	if _, err := Read[*validate.Part](bad); err == nil || err.Error() != "shard "+bad+": sample 2 does not belong to shard 1/2" {
		t.Errorf("foreign sample: %v", err)
	}
	f.Format = "other"
	if err := Write(bad, f); err != nil {
		t.Fatal(err)
	}
	if _, err := Read[*validate.Part](bad); err == nil || !strings.Contains(err.Error(), `format "other", want "kvsim-shard/1"`) {
		t.Errorf("format: %v", err)
	}
}

// FuzzRead: no shard file, however damaged, makes Read or a merge of it panic or
// allocate without bound.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	for _, n := range []int{1, 2} {
		for _, path := range shards(f, dir, n, 1) {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "shard.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Read[*validate.Part](path)
		if err != nil {
			return
		}
		if file.Validation != nil {
			if parts, err := Validations([]*testFile{file}, []string{path}); err == nil {
				validate.MergeParts(parts, []string{path})
			}
		} else {
			Merge([]*testFile{file}, []string{path})
		}
	})
}

// FuzzParse: any -shard value parses to a valid spec or to an error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0/1", "3/4", "slurm", "4/4", "-1/2", "1/", "/", "9999999999999999999/1"} {
		f.Add(s, "2", "4")
	}
	f.Fuzz(func(t *testing.T, flag, id, count string) {
		sp, err := Parse(flag, env(map[string]string{EnvTaskID: id, EnvTaskCount: count, EnvTaskMin: "0", EnvTaskMax: count}))
		if err == nil && (sp.Count < 1 || sp.Count > MaxCount || sp.Index < 0 || sp.Index >= sp.Count) {
			t.Errorf("Parse(%q) = %v", flag, sp)
		}
	})
}
