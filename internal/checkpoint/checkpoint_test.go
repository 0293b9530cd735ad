package checkpoint

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/internal/tokenizer"
)

// tiny is a two-layer model small enough to write in a millisecond.
func tiny() SynthOptions {
	return SynthOptions{
		NumHiddenLayers: 2, HiddenSize: 16, NumAttentionHeads: 4, FFNDim: 32,
		VocabSize: 64, MaxPositionEmbeddings: 24, Seed: 7,
	}
}

func writeSynth(t *testing.T, o SynthOptions) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := WriteSynth(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadFormat(t *testing.T, dir string, f Format) *Model {
	t.Helper()
	m, err := LoadFormat(dir, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// byCanonicalName lists every tensor of w by canonical name, failing on a duplicate.
func byCanonicalName(t *testing.T, w *Weights) map[string]*Tensor {
	t.Helper()
	all := []*Tensor{w.EmbedTokens, w.EmbedPositions, w.ProjectIn, w.ProjectOut, w.FinalLayerNorm.Weight, w.FinalLayerNorm.Bias}
	for _, l := range w.Layers {
		for _, lin := range []Linear{l.QProj, l.KProj, l.VProj, l.OutProj, l.FC1, l.FC2} {
			all = append(all, lin.Weight, lin.Bias)
		}
		for _, n := range []LayerNorm{l.SelfAttnLayerNorm, l.FinalLayerNorm} {
			all = append(all, n.Weight, n.Bias)
		}
	}
	if w.LMHead != w.EmbedTokens {
		all = append(all, w.LMHead)
	}
	out := make(map[string]*Tensor)
	for _, tensor := range all {
		if tensor == nil {
			continue
		}
		name := canonicalName(tensor.Name)
		if _, dup := out[name]; dup {
			t.Fatalf("tensor %s bound twice", name)
		}
		out[name] = tensor
	}
	return out
}

// checkSynthWeights checks that m holds exactly the tensors WriteSynth draws for o,
// byte for byte.
func checkSynthWeights(t *testing.T, m *Model, o SynthOptions) {
	t.Helper()
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Config, c) {
		t.Errorf("config = %+v, want %+v", m.Config, c)
	}
	got := byCanonicalName(t, &m.Weights)
	want := synthTensors(c)
	if len(got) != len(want) {
		t.Errorf("%d tensors bound, want %d", len(got), len(want))
	}
	for _, st := range want {
		tensor := got[st.name]
		if tensor == nil {
			t.Errorf("%s: not bound", st.name)
			continue
		}
		if tensor.DType != o.dtype() || !slices.Equal(tensor.Shape, st.shape) {
			t.Errorf("%s: %v %v, want %v %v", st.name, tensor.DType, tensor.Shape, o.dtype(), st.shape)
		}
		if !bytes.Equal(tensor.Data, st.bytes(o.Seed, o.dtype())) {
			t.Errorf("%s (%s): data differs from what WriteSynth drew", st.name, tensor.Name)
		}
	}
	if len(m.Unused) != 0 {
		t.Errorf("Unused = %v", m.Unused)
	}
}

func TestSynthRoundTrip(t *testing.T) {
	for _, dtype := range []half.DType{half.F16, half.BF16, half.F32} {
		t.Run(dtype.String(), func(t *testing.T) {
			o := tiny()
			o.DType = dtype
			dir := writeSynth(t, o)
			for _, format := range []Format{Safetensors, PyTorch} {
				m := loadFormat(t, dir, format)
				if m.Format != format {
					t.Errorf("LoadFormat(%v) loaded %v", format, m.Format)
				}
				checkSynthWeights(t, m, o)
				if m.Weights.LMHead != m.Weights.EmbedTokens {
					t.Errorf("%v: lm_head not tied to embed_tokens", format)
				}
				if name := m.Weights.Layers[1].FC2.Bias.Name; name != "model.decoder.layers.1.fc2.bias" {
					t.Errorf("%v: stored name %q", format, name)
				}
			}
			if m := loadFormat(t, dir, Safetensors|PyTorch); m.Format != Safetensors {
				t.Errorf("Load preferred %v over safetensors", m.Format)
			}
		})
	}
}

func TestSynthValuesAreDistinctAndScaled(t *testing.T) {
	o := tiny()
	m := loadFormat(t, writeSynth(t, o), Safetensors)
	w := &m.Weights
	// The padding token's embedding is zero, as transformers initialises it.
	for _, v := range w.EmbedTokens.Row(m.Config.PadTokenID, nil) {
		if v != 0 {
			t.Fatalf("embedding of pad token %d is not zero", m.Config.PadTokenID)
		}
	}
	// LayerNorm weights sit around 1, q_proj around 0 with std sqrt(2/16) = 0.35.
	mean := func(xs []float32) (mu, sd float64) {
		for _, x := range xs {
			mu += float64(x)
		}
		mu /= float64(len(xs))
		for _, x := range xs {
			sd += (float64(x) - mu) * (float64(x) - mu)
		}
		return mu, sd / float64(len(xs))
	}
	if mu, _ := mean(w.Layers[0].SelfAttnLayerNorm.Weight.Float32(nil)); mu < 0.9 || mu > 1.1 {
		t.Errorf("LayerNorm weight mean %.3f, want about 1", mu)
	}
	if mu, variance := mean(w.Layers[0].QProj.Weight.Float32(nil)); mu < -0.1 || mu > 0.1 || variance < 0.09 || variance > 0.16 {
		t.Errorf("q_proj mean %.3f variance %.3f, want about 0 and 0.125", mu, variance)
	}
	if bytes.Equal(w.Layers[0].QProj.Weight.Data, w.Layers[0].KProj.Weight.Data) {
		t.Error("q_proj and k_proj of layer 0 are equal")
	}
	other := tiny()
	other.Seed++
	m2 := loadFormat(t, writeSynth(t, other), Safetensors)
	if bytes.Equal(w.Layers[0].QProj.Weight.Data, m2.Weights.Layers[0].QProj.Weight.Data) {
		t.Error("seeds 7 and 8 drew the same q_proj")
	}
}

func TestNamePrefixes(t *testing.T) {
	base := loadFormat(t, writeSynth(t, tiny()), PyTorch)
	o := tiny()
	o.NamePrefix = "decoder."
	dir := writeSynth(t, o)
	for _, format := range []Format{Safetensors, PyTorch} {
		m := loadFormat(t, dir, format)
		checkSynthWeights(t, m, o)
		if name := m.Weights.EmbedPositions.Name; name != "decoder.embed_positions.weight" {
			t.Errorf("%v: embed_positions stored as %q", format, name)
		}
		want := byCanonicalName(t, &base.Weights)
		for name, tensor := range byCanonicalName(t, &m.Weights) {
			if !bytes.Equal(tensor.Data, want[name].Data) {
				t.Errorf("%v: %s differs between prefixes", format, name)
			}
		}
	}
}

// TestLMHeadTied checks the head transformers would use: with tie_word_embeddings
// true (the default) the embedding, even when the file holds an lm_head.weight of
// different values; with it false, the stored lm_head.weight.
func TestLMHeadTied(t *testing.T) {
	c, ts := tinyTensors(t, "model.decoder.")
	head := rawTensor{name: "lm_head.weight", dtype: "F16", shape: []int{c.VocabSize, c.WordEmbedProjDim},
		data: synthTensor{shape: []int{c.VocabSize, c.WordEmbedProjDim}, std: 1, zeroRow: -1}.bytes(99, half.F16)}
	files := map[string][]byte{SafetensorsFile: encodeSafetensors(t, append(ts, head))}
	for _, tc := range []struct {
		tie  any // nil: the key is absent
		want string
	}{{nil, "model.decoder.embed_tokens.weight"}, {true, "model.decoder.embed_tokens.weight"}, {false, "lm_head.weight"}} {
		config := configMap(t, c)
		delete(config, "tie_word_embeddings")
		if tc.tie != nil {
			config["tie_word_embeddings"] = tc.tie
		}
		m, err := Load(writeDir(t, config, files))
		if err != nil {
			t.Fatal(err)
		}
		w := m.Weights
		if w.LMHead.Name != tc.want || (tc.want == "lm_head.weight") != !bytes.Equal(w.LMHead.Data, w.EmbedTokens.Data) {
			t.Errorf("tie_word_embeddings %v: the head is %s", tc.tie, w.LMHead.Name)
		}
		m.Close()
	}
	config := configMap(t, c)
	config["tie_word_embeddings"] = false
	if _, err := Load(writeDir(t, config, map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})); err == nil ||
		!strings.Contains(err.Error(), "missing tensor lm_head.weight") {
		t.Errorf("untied without lm_head.weight: %v", err)
	}
}

func TestLMHeadWritten(t *testing.T) {
	o := tiny()
	o.WriteLMHead = true
	dir := writeSynth(t, o)
	for _, format := range []Format{Safetensors, PyTorch} {
		if w := loadFormat(t, dir, format).Weights; w.LMHead != w.EmbedTokens {
			t.Errorf("%v: the tied head is %s, not the embedding", format, w.LMHead.Name)
		}
	}
}

func TestOPT350mStyle(t *testing.T) {
	o := tiny()
	o.Preset = "opt-350m"
	o.FFNDim = 0 // follows hidden_size: 4 * 16
	dir := writeSynth(t, o)
	for _, format := range []Format{Safetensors, PyTorch} {
		m := loadFormat(t, dir, format)
		c := m.Config
		if c.DoLayerNormBefore || c.WordEmbedProjDim != 8 || c.FFNDim != 64 || c.HasFinalLayerNorm() {
			t.Fatalf("config %+v: want post-LN, word_embed_proj_dim 8, ffn_dim 64, no final LayerNorm", c)
		}
		checkSynthWeights(t, m, o)
		w := m.Weights
		for _, s := range []struct {
			tensor *Tensor
			shape  []int
		}{
			{w.EmbedTokens, []int{64, 8}},
			{w.ProjectIn, []int{16, 8}},
			{w.ProjectOut, []int{8, 16}},
			{w.LMHead, []int{64, 8}},
			{w.EmbedPositions, []int{26, 16}},
		} {
			if s.tensor == nil || !slices.Equal(s.tensor.Shape, s.shape) {
				t.Errorf("%v: tensor %+v, want shape %v", format, s.tensor, s.shape)
			}
		}
		if w.FinalLayerNorm.Weight != nil {
			t.Errorf("%v: post-LN model has a final LayerNorm", format)
		}
	}
}

func TestShardedMatchesSingle(t *testing.T) {
	o := tiny()
	o.WriteLMHead = true
	single := writeSynth(t, o)
	o.ShardBytes = 1500
	sharded := writeSynth(t, o)
	for _, format := range []Format{Safetensors, PyTorch} {
		want := byCanonicalName(t, &loadFormat(t, single, format).Weights)
		m := loadFormat(t, sharded, format)
		if len(m.Files) < 3 {
			t.Errorf("%v: %d shards, want several: %v", format, len(m.Files), m.Files)
		}
		got := byCanonicalName(t, &m.Weights)
		if len(got) != len(want) {
			t.Errorf("%v: %d tensors sharded, %d single", format, len(got), len(want))
		}
		for name, tensor := range want {
			if !bytes.Equal(got[name].Data, tensor.Data) {
				t.Errorf("%v: %s differs between sharded and single", format, name)
			}
		}
	}
	for _, name := range []string{SafetensorsIndexFile, PyTorchIndexFile} {
		var index struct {
			Metadata struct {
				TotalSize int64 `json:"total_size"`
			} `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}
		data, err := os.ReadFile(filepath.Join(sharded, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &index); err != nil {
			t.Fatal(err)
		}
		// 2 bytes per element of all tensors; the safetensors copy of lm_head counts.
		c, _ := o.Config()
		total := int64(0)
		for _, st := range synthTensors(c) {
			total += st.nbytes(half.F16)
		}
		if name == SafetensorsIndexFile {
			total += int64(c.VocabSize * c.WordEmbedProjDim * 2)
		}
		if index.Metadata.TotalSize != total || index.WeightMap["lm_head.weight"] == "" {
			t.Errorf("%s: total_size %d (want %d), lm_head in %q", name, index.Metadata.TotalSize, total, index.WeightMap["lm_head.weight"])
		}
	}
}

// TestCompressedArchive loads a torch archive whose entries are deflated, which
// takes the copying path instead of slicing the mapping.
func TestCompressedArchive(t *testing.T) {
	o := tiny()
	o.Formats = PyTorch
	dir := writeSynth(t, o)
	path := filepath.Join(dir, PyTorchFile)
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
	}
	zr.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checkSynthWeights(t, loadFormat(t, dir, PyTorch), o)
}

// TestPythonReadsSynth reads both formats with testdata/crosscheck.py, a reader
// written against the formats' definitions with Python's zipfile, pickle, struct and
// json, and compares every tensor's bytes with Load's.
func TestPythonReadsSynth(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	o := tiny()
	o.WriteLMHead = true
	o.Preset = "opt-350m"
	o.DType = half.BF16
	dir := writeSynth(t, o)
	untie(t, dir) // so that Load binds the stored lm_head.weight too
	cmd := exec.Command(python, "testdata/crosscheck.py", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, stderr.String())
	}
	var read map[string]map[string]struct {
		DType  string `json:"dtype"`
		Shape  []int  `json:"shape"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(out, &read); err != nil {
		t.Fatal(err)
	}
	for _, format := range []Format{Safetensors, PyTorch} {
		got := read[format.String()]
		m := loadFormat(t, dir, format)
		tensors := byCanonicalName(t, &m.Weights)
		if len(got) != len(tensors) {
			t.Errorf("%v: python read %d tensors, Load %d", format, len(got), len(tensors))
		}
		for _, tensor := range tensors {
			sum := sha256.Sum256(tensor.Data)
			p := got[tensor.Name]
			if p.DType != tensor.DType.String() || !slices.Equal(p.Shape, tensor.Shape) || p.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%v: %s: python %+v, Load %v %v sha256 %x", format, tensor.Name, p, tensor.DType, tensor.Shape, sum)
			}
		}
	}
}

func TestWriteSynthRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteSynth(dir, tiny())
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("WriteSynth into a non-empty directory: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("WriteSynth left %d entries beside the directory", len(entries)-1)
	}
	// An existing empty directory is replaced.
	empty := t.TempDir()
	if err := WriteSynth(empty, tiny()); err != nil {
		t.Fatal(err)
	}
	loadFormat(t, empty, Safetensors)
}

func TestSynthOptionErrors(t *testing.T) {
	for _, c := range []struct {
		change func(*SynthOptions)
		want   string
	}{
		{func(o *SynthOptions) { o.Preset = "opt-175b" }, `unknown preset "opt-175b"`},
		{func(o *SynthOptions) { o.LayerNorm = "middle" }, `layer norm placement "middle"`},
		{func(o *SynthOptions) { o.NamePrefix = "transformer." }, `name prefix "transformer."`},
		{func(o *SynthOptions) { o.NumAttentionHeads = 5 }, "hidden_size 16 is not divisible by num_attention_heads 5"},
		{func(o *SynthOptions) { o.DType = 9 }, "dtype DType(9)"},
		{func(o *SynthOptions) { o.NumHiddenLayers = 100_000_000 }, "num_hidden_layers is 100000000, want a positive size of at most 1024"},
		{func(o *SynthOptions) { o.HiddenSize, o.FFNDim = 32768, 65536 }, "has more than 1073741824 elements"},
	} {
		o := tiny()
		c.change(&o)
		err := WriteSynth(filepath.Join(t.TempDir(), "m"), o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WriteSynth: %v, want an error containing %q", err, c.want)
		}
	}
}

func TestSynthConfigFollowsPreset(t *testing.T) {
	c, err := SynthOptions{Preset: "opt-350m", HiddenSize: 64, NumAttentionHeads: 4}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.FFNDim != 256 || c.WordEmbedProjDim != 32 || c.DoLayerNormBefore || c.NumHiddenLayers != 24 {
		t.Errorf("opt-350m with hidden 64: %+v", c)
	}
	c, err = SynthOptions{Preset: "opt-13b", LayerNorm: "post"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NameOrPath: "kvsim/synth-opt-13b", VocabSize: 50272, HiddenSize: 5120, NumHiddenLayers: 40,
		NumAttentionHeads: 40, FFNDim: 20480, MaxPositionEmbeddings: 2048, WordEmbedProjDim: 5120,
		LayerNormElementwiseAffine: true, EnableBias: true, ActivationFunction: "relu",
		BOSTokenID: 2, EOSTokenID: 2, PadTokenID: 1, TorchDType: "float16", TieWordEmbeddings: true,
	}
	if c != want {
		t.Errorf("opt-13b, post-LN: %+v, want %+v", c, want)
	}
	// The published sizes (layers, hidden, heads), from each model's config.json.
	published := map[string][3]int{
		"opt-125m": {12, 768, 12}, "opt-350m": {24, 1024, 16}, "opt-1.3b": {24, 2048, 32}, "opt-2.7b": {32, 2560, 32},
		"opt-6.7b": {32, 4096, 32}, "opt-13b": {40, 5120, 40}, "opt-30b": {48, 7168, 56}, "opt-66b": {64, 9216, 72},
	}
	if len(opt.Names()) != len(published) {
		t.Errorf("presets %v", opt.Names())
	}
	for name, size := range published {
		c, err := SynthOptions{Preset: name}.Config()
		if err != nil || [3]int{c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads} != size {
			t.Errorf("%s: %+v, %v; want layers, hidden, heads %v", name, c, err, size)
		}
	}
}

func TestSynthTokenizer(t *testing.T) {
	o := tiny()
	o.VocabSize = 300
	o.TokenizerCorpus = strings.Repeat("the cache keeps the keys and the values of the tokens it has seen. ", 3)
	dir := writeSynth(t, o)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := loadFormat(t, dir, Safetensors)
	if tok.VocabSize() > m.Config.VocabSize || tok.EOS() != m.Config.EOSTokenID || tok.PAD() != m.Config.PadTokenID {
		t.Errorf("tokenizer: %d tokens, eos %d, pad %d; config: %d, %d, %d",
			tok.VocabSize(), tok.EOS(), tok.PAD(), m.Config.VocabSize, m.Config.EOSTokenID, m.Config.PadTokenID)
	}
	// Training merged the corpus's frequent words: " cache" is one token.
	if ids := tok.Encode(" cache"); len(ids) != 1 {
		t.Errorf("Encode(\" cache\") = %v, want a single token", ids)
	}

	o.VocabSize = 64
	if err := WriteSynth(filepath.Join(t.TempDir(), "m"), o); err == nil || !strings.Contains(err.Error(), "vocab_size 64 is smaller than the tokenizer's 260 base tokens") {
		t.Errorf("tokenizer with 64 tokens: %v", err)
	}
}

// TestLoadsPythonWrittenArchive loads a pytorch_model.bin written by
// testdata/torchsave.py, which pickles a state dict with Python's own Pickler the way
// torch.save does (memo opcodes, the _metadata attribute, shared and offset storages)
// and zips it without alignment padding.
func TestLoadsPythonWrittenArchive(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	o := tiny()
	o.Formats = Safetensors
	dir := writeSynth(t, o)
	if out, err := exec.Command(python, "testdata/torchsave.py", dir).CombinedOutput(); err != nil {
		t.Fatalf("torchsave.py: %v\n%s", err, out)
	}
	want := byCanonicalName(t, &loadFormat(t, dir, Safetensors).Weights)
	untie(t, dir) // so that Load binds the stored lm_head.weight
	m := loadFormat(t, dir, PyTorch)
	got := byCanonicalName(t, &m.Weights)
	if len(got) != len(want)+1 || len(m.Unused) != 0 { // + lm_head
		t.Errorf("%d tensors bound (want %d), unused %v", len(got), len(want)+1, m.Unused)
	}
	for name, tensor := range want {
		if !bytes.Equal(got[name].Data, tensor.Data) {
			t.Errorf("%s differs from model.safetensors", name)
		}
	}
	w := m.Weights
	if w.LMHead.Name != "lm_head.weight" || &w.LMHead.Data[0] != &w.EmbedTokens.Data[0] {
		t.Error("lm_head does not share embed_tokens' storage")
	}
	l := w.Layers[0]
	if gap := uintptr(unsafe.Pointer(&l.KProj.Weight.Data[0])) - uintptr(unsafe.Pointer(&l.QProj.Weight.Data[0])); gap != 16*16*2 {
		t.Errorf("k_proj starts %d bytes after q_proj in the fused storage, want 512", gap)
	}
}

// TestArchiveBomb checks that a small archive whose pickle inflates past
// MaxPickleBytes is refused without inflating it all, whether or not its sizes
// tell the truth.
func TestArchiveBomb(t *testing.T) {
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range MaxPickleBytes>>20 + 1 {
		w.Write(zeros)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	archive := out.Bytes()
	if _, err := parseTorchZip(archive); err == nil || !strings.Contains(err.Error(), "archive/data.pkl: 68157440 bytes, more than the 67108864") {
		t.Errorf("a %d-byte archive holding a 65 MiB pickle: %v", len(archive), err)
	}
	// The same with the central directory's size lowered to 1 KiB: the inflation stops.
	i := bytes.LastIndex(archive, []byte("PK\x01\x02"))
	binary.LittleEndian.PutUint32(archive[i+24:], 1024)
	if _, err := parseTorchZip(archive); err == nil || !strings.Contains(err.Error(), "archive/data.pkl:") {
		t.Errorf("a pickle lying about its size: %v", err)
	}
}

// untie sets tie_word_embeddings to false in dir's config.json.
func untie(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var config map[string]any
	if err := json.Unmarshal(data, &config); err != nil {
		t.Fatal(err)
	}
	config["tie_word_embeddings"] = false
	if data, err = json.Marshal(config); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
