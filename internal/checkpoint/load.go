package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/mapfile"
)

// Format is a set of weights file formats.
type Format uint8

const (
	// Safetensors is model.safetensors, or shards listed in
	// model.safetensors.index.json.
	Safetensors Format = 1 << iota
	// PyTorch is pytorch_model.bin (a torch.save zip archive), or shards listed in
	// pytorch_model.bin.index.json.
	PyTorch
)

// The weights files of a checkpoint directory, as transformers names them.
const (
	SafetensorsFile      = "model.safetensors"
	SafetensorsIndexFile = "model.safetensors.index.json"
	PyTorchFile          = "pytorch_model.bin"
	PyTorchIndexFile     = "pytorch_model.bin.index.json"
)

func (f Format) String() string {
	switch f {
	case Safetensors:
		return "safetensors"
	case PyTorch:
		return "pytorch"
	case Safetensors | PyTorch:
		return "safetensors+pytorch"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Linear is a torch nn.Linear: Weight is [out_features, in_features] and Bias is
// [out_features], or nil where the config disables biases or the layer has none.
type Linear struct {
	Weight, Bias *Tensor
}

// LayerNorm is a torch nn.LayerNorm over the hidden size; both tensors are nil when
// the config turns off layer_norm_elementwise_affine.
type LayerNorm struct {
	Weight, Bias *Tensor
}

// Layer is one OPTDecoderLayer.
type Layer struct {
	QProj, KProj, VProj, OutProj Linear    // self_attn.*_proj, [hidden, hidden]
	SelfAttnLayerNorm            LayerNorm // before attention (pre-LN) or after its residual (post-LN)
	FC1                          Linear    // [ffn_dim, hidden]
	FC2                          Linear    // [hidden, ffn_dim]
	FinalLayerNorm               LayerNorm // the layer's norm around fc1 and fc2
}

// Weights are the tensors of an OPTForCausalLM, named after its modules.
type Weights struct {
	EmbedTokens *Tensor // [vocab_size, word_embed_proj_dim]
	// EmbedPositions is [max_position_embeddings+PositionOffset, hidden_size]; use
	// PositionRow rather than indexing it by position.
	EmbedPositions *Tensor
	ProjectIn      *Tensor   // [hidden_size, word_embed_proj_dim]; nil unless Config.HasProjection
	ProjectOut     *Tensor   // [word_embed_proj_dim, hidden_size]; nil unless Config.HasProjection
	FinalLayerNorm LayerNorm // the decoder's; zero unless Config.HasFinalLayerNorm
	Layers         []Layer
	// LMHead is [vocab_size, word_embed_proj_dim]. It is EmbedTokens itself unless
	// config.json sets tie_word_embeddings to false, as transformers ties them.
	LMHead *Tensor
}

// PositionRow converts the learned position embedding of position p (counted from 0)
// to float32, reusing dst when large enough. It panics if p is outside
// [0, max_position_embeddings).
func (w *Weights) PositionRow(p int, dst []float32) []float32 {
	if p < 0 || p+PositionOffset >= w.EmbedPositions.Shape[0] {
		panic(fmt.Sprintf("checkpoint: position %d outside [0, %d)", p, w.EmbedPositions.Shape[0]-PositionOffset))
	}
	return w.EmbedPositions.Row(p+PositionOffset, dst)
}

// Model is a loaded OPT checkpoint. Its tensors are views of the mapped weights
// files.
//
// # Notes
//
//   - Close unmaps the files: no Tensor of the model may be used afterwards.
//   - The files must not be truncated while the model is open: on unix, a read from
//     the lost part of a mapping kills the process (SIGBUS).
//   - A Model is safe for concurrent reads.
type Model struct {
	Config  Config
	Weights Weights
	Format  Format   // the format that was loaded
	Files   []string // the weights files mapped, in load order
	// Unused lists, by stored name, the checkpoint's tensors that OPT does not use.
	Unused   []string
	releases []func() error
}

// Close unmaps the weights files.
func (m *Model) Close() error {
	var errs []error
	for _, release := range m.releases {
		errs = append(errs, release())
	}
	m.releases = nil
	return errors.Join(errs...)
}

// Load reads the checkpoint in dir: config.json and the weights in the first form
// found among model.safetensors, model.safetensors.index.json, pytorch_model.bin and
// pytorch_model.bin.index.json.
func Load(dir string) (*Model, error) {
	return LoadFormat(dir, Safetensors|PyTorch)
}

// LoadFormat is Load restricted to the given formats, e.g. to read pytorch_model.bin
// from a directory that also has model.safetensors.
func LoadFormat(dir string, formats Format) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	source, format, err := findWeights(dir, formats)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Format: format}
	if err := m.load(source, format); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// findWeights returns the path of the first weights file of the allowed formats in
// dir: a single file or an index.
func findWeights(dir string, formats Format) (path string, format Format, err error) {
	var tried []string
	for _, c := range []struct {
		format Format
		name   string
	}{
		{Safetensors, SafetensorsFile}, {Safetensors, SafetensorsIndexFile},
		{PyTorch, PyTorchFile}, {PyTorch, PyTorchIndexFile},
	} {
		if formats&c.format == 0 {
			continue
		}
		path := filepath.Join(dir, c.name)
		if _, err := os.Stat(path); err == nil {
			return path, c.format, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", 0, err
		}
		tried = append(tried, c.name)
	}
	return "", 0, fmt.Errorf("%s: no weights: none of %s exists", dir, strings.Join(tried, ", "))
}

// located is a stored tensor and the file holding it.
type located struct {
	storedTensor
	file string
}

// load maps the weights behind source, a weights file or an index, and binds them.
func (m *Model) load(source string, format Format) error {
	files := []string{source}
	var weightMap map[string]string
	if strings.HasSuffix(source, ".index.json") {
		var err error
		if files, weightMap, err = readIndex(source); err != nil {
			return err
		}
	}
	tensors := make(map[string]located)
	for _, path := range files {
		stored, err := m.mapWeights(path, format)
		if err != nil {
			return err
		}
		for _, t := range stored {
			name := canonicalName(t.name)
			if prev, dup := tensors[name]; dup {
				return fmt.Errorf("%s: tensor %s duplicates %s of %s", path, t.name, prev.name, prev.file)
			}
			tensors[name] = located{t, path}
		}
	}
	for _, stored := range slices.Sorted(maps.Keys(weightMap)) {
		shard := weightMap[stored]
		t, ok := tensors[canonicalName(stored)]
		if want := filepath.Join(filepath.Dir(source), shard); !ok || t.file != want {
			return fmt.Errorf("%s: tensor %s is not in %s, where the index puts it", source, stored, want)
		}
	}
	b := &binder{cfg: m.Config, source: source, tensors: tensors, used: make(map[string]bool)}
	if err := b.bind(&m.Weights); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(tensors)) {
		t := tensors[name]
		if b.used[name] {
			continue
		}
		if layer, ok := layerIndex(name); ok && layer >= m.Config.NumHiddenLayers {
			return fmt.Errorf("%s: tensor %s is in layer %d, but config.json has %d layers",
				t.file, t.name, layer, m.Config.NumHiddenLayers)
		}
		m.Unused = append(m.Unused, t.name)
	}
	slices.Sort(m.Unused)
	return nil
}

// mapWeights maps one weights file and parses its tensors, which alias the mapping.
func (m *Model) mapWeights(path string, format Format) ([]storedTensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if info.Size() == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	if info.Size() > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes, too many to map", path, info.Size())
	}
	data, release, err := mapfile.Map(f, int(info.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.releases = append(m.releases, release)
	m.Files = append(m.Files, path)
	var tensors []storedTensor
	if format == Safetensors {
		tensors, err = parseSafetensors(data)
	} else {
		tensors, err = parseTorchZip(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tensors, nil
}

// shardIndex is a *.index.json file: which shard holds each tensor.
type shardIndex struct {
	WeightMap map[string]string `json:"weight_map"`
}

// readIndex reads a shard index and returns the shard paths, in name order, and its
// weight map.
func readIndex(path string) (shards []string, weightMap map[string]string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var index shardIndex
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: empty weight_map", path)
	}
	for tensor, shard := range index.WeightMap {
		if shard == "" || filepath.Base(shard) != shard || !filepath.IsLocal(shard) {
			return nil, nil, fmt.Errorf("%s: tensor %s: shard %q is not a file name in the same directory", path, tensor, shard)
		}
		shards = append(shards, filepath.Join(filepath.Dir(path), shard))
	}
	slices.Sort(shards)
	return slices.Compact(shards), index.WeightMap, nil
}

// canonicalName strips the prefixes by which checkpoints differ:
// "model.decoder.layers.0.fc1.weight" (OPTForCausalLM) and
// "decoder.layers.0.fc1.weight" (the original facebook/opt-* files) both become
// "layers.0.fc1.weight". "lm_head.weight" stays as it is.
func canonicalName(stored string) string {
	name := strings.TrimPrefix(stored, "model.")
	return strings.TrimPrefix(name, "decoder.")
}

// layerIndex returns N for a canonical name "layers.N.…".
func layerIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "layers.")
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// engineDTypes maps the stored dtypes the engine reads to DTypes.
var engineDTypes = map[string]half.DType{"F16": half.F16, "BF16": half.BF16, "F32": half.F32}

// binder takes tensors by canonical name, checking them against the config.
type binder struct {
	cfg     Config
	source  string // the weights file or index, named when a tensor is missing
	tensors map[string]located
	used    map[string]bool
}

// take returns the tensor called name, checked to be a float tensor of the given
// shape; a missing one is an error when required, else nil.
func (b *binder) take(name string, required bool, shape ...int) (*Tensor, error) {
	t, ok := b.tensors[name]
	if !ok {
		if required {
			return nil, fmt.Errorf("%s: missing tensor %s", b.source, b.storedName(name))
		}
		return nil, nil
	}
	b.used[name] = true
	dtype, ok := engineDTypes[t.dtype]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %s has dtype %s; the engine reads F16, BF16 and F32", t.file, t.name, t.dtype)
	}
	if !slices.Equal(t.shape, shape) {
		return nil, fmt.Errorf("%s: tensor %s has shape %v, config.json implies %v", t.file, t.name, t.shape, shape)
	}
	return &Tensor{Name: t.name, DType: dtype, Shape: t.shape, Data: t.data}, nil
}

// storedName spells a canonical name the way the checkpoint spells its decoder
// tensors, for error messages.
func (b *binder) storedName(name string) string {
	if name == "lm_head.weight" {
		return name
	}
	for _, canonical := range slices.Sorted(maps.Keys(b.tensors)) {
		if canonical != "lm_head.weight" {
			return strings.TrimSuffix(b.tensors[canonical].name, canonical) + name
		}
	}
	return "model.decoder." + name
}

// bind fills w with every tensor the config implies.
func (b *binder) bind(w *Weights) error {
	c := b.cfg
	h, e := c.HiddenSize, c.WordEmbedProjDim
	var errs []error
	need := func(name string, shape ...int) *Tensor {
		t, err := b.take(name, true, shape...)
		errs = append(errs, err)
		return t
	}
	linear := func(prefix string, out, in int) Linear {
		l := Linear{Weight: need(prefix+".weight", out, in)}
		if c.EnableBias {
			l.Bias = need(prefix+".bias", out)
		}
		return l
	}
	norm := func(prefix string) LayerNorm {
		if !c.LayerNormElementwiseAffine {
			return LayerNorm{}
		}
		return LayerNorm{Weight: need(prefix+".weight", h), Bias: need(prefix+".bias", h)}
	}

	w.EmbedTokens = need("embed_tokens.weight", c.VocabSize, e)
	w.EmbedPositions = need("embed_positions.weight", c.MaxPositionEmbeddings+PositionOffset, h)
	if c.HasProjection() {
		w.ProjectIn = need("project_in.weight", h, e)
		w.ProjectOut = need("project_out.weight", e, h)
	}
	if c.HasFinalLayerNorm() {
		w.FinalLayerNorm = norm("final_layer_norm")
	}
	w.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range w.Layers {
		p := "layers." + strconv.Itoa(i) + "."
		w.Layers[i] = Layer{
			QProj:             linear(p+"self_attn.q_proj", h, h),
			KProj:             linear(p+"self_attn.k_proj", h, h),
			VProj:             linear(p+"self_attn.v_proj", h, h),
			OutProj:           linear(p+"self_attn.out_proj", h, h),
			SelfAttnLayerNorm: norm(p + "self_attn_layer_norm"),
			FC1:               linear(p+"fc1", c.FFNDim, h),
			FC2:               linear(p+"fc2", h, c.FFNDim),
			FinalLayerNorm:    norm(p + "final_layer_norm"),
		}
	}
	// Tied, the head is the embedding and a stored lm_head.weight is ignored, as
	// transformers' tie_weights does; untied, the head must be stored.
	head, err := b.take("lm_head.weight", !c.TieWordEmbeddings, c.VocabSize, e)
	errs = append(errs, err)
	if c.TieWordEmbeddings {
		head = w.EmbedTokens
	}
	w.LMHead = head
	// Report the first problem only: one missing layer would otherwise bury the
	// message under a dozen more.
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
