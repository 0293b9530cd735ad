package checkpoint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/internal/tokenizer"
)

// preset returns the config of a published OPT size.
func preset(name string) (Config, bool) {
	p, err := opt.Lookup(name)
	if err != nil {
		return Config{}, false
	}
	hidden := p.Heads * p.HeadDim
	c := Config{
		NameOrPath:                 "facebook/" + name,
		VocabSize:                  50272,
		HiddenSize:                 hidden,
		NumHiddenLayers:            p.Layers,
		NumAttentionHeads:          p.Heads,
		FFNDim:                     4 * hidden,
		MaxPositionEmbeddings:      2048,
		WordEmbedProjDim:           hidden,
		DoLayerNormBefore:          true,
		LayerNormElementwiseAffine: true,
		EnableBias:                 true,
		TieWordEmbeddings:          true,
		ActivationFunction:         "relu",
		BOSTokenID:                 2,
		EOSTokenID:                 2,
		PadTokenID:                 1,
		TorchDType:                 "float16",
	}
	if name == "opt-350m" { // the one post-LN OPT, with a narrower embedding
		c.WordEmbedProjDim = 512
		c.DoLayerNormBefore = false
	}
	return c, true
}

// SynthOptions describes a random checkpoint for WriteSynth. The zero value asks for
// a random opt-125m in F16, written as model.safetensors and pytorch_model.bin.
type SynthOptions struct {
	// Preset is the architecture to start from, one of opt.Names(); "" is "opt-125m".
	Preset string
	// Overrides of the preset's sizes; zero keeps the preset's. When zero, FFNDim and
	// WordEmbedProjDim follow HiddenSize in the preset's ratio (4:1, and 1:2 for
	// opt-350m's projection).
	NumHiddenLayers, HiddenSize, NumAttentionHeads, FFNDim int
	VocabSize, MaxPositionEmbeddings, WordEmbedProjDim     int
	// LayerNorm is "pre" or "post" to override where the preset puts its LayerNorms
	// (opt-350m is post-LN, the others pre-LN); "" keeps the preset's.
	LayerNorm string
	// DType is the dtype of every tensor; 0 is F16, as published.
	DType half.DType
	// Seed selects the random weights. Each tensor is drawn from its own stream, keyed
	// by its name, so sharding, formats and prefixes leave the values unchanged.
	Seed uint64
	// Formats are the weights files to write; 0 is both.
	Formats Format
	// ShardBytes, when positive, splits each format's weights into shards holding at
	// most this many bytes of tensor data (a larger tensor gets a shard of its own),
	// listed by an index file, as transformers' max_shard_size does.
	ShardBytes int64
	// NamePrefix starts the decoder's tensor names: "model.decoder." (the default, as
	// OPTForCausalLM saves) or "decoder." (as the original facebook/opt-* files).
	NamePrefix string
	// WriteLMHead also writes lm_head.weight, equal to embed_tokens: in
	// pytorch_model.bin as a second view of embed_tokens' storage, as torch.save
	// stores tied weights, and in model.safetensors as a copy.
	WriteLMHead bool
	// TokenizerCorpus, when not empty, also writes a byte-level BPE tokenizer in OPT's
	// layout (vocab.json, merges.txt, tokenizer_config.json) trained on this text by
	// tokenizer.TrainTiny, with at most VocabSize tokens. VocabSize must then be at
	// least 260: four special tokens and the 256 bytes.
	TokenizerCorpus string
}

// Config returns the model config WriteSynth writes for o.
func (o SynthOptions) Config() (Config, error) {
	name := o.Preset
	if name == "" {
		name = "opt-125m"
	}
	c, ok := preset(name)
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (want one of %v)", o.Preset, opt.Names())
	}
	base := c
	c.NameOrPath = "kvsim/synth-" + name
	override := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	override(&c.NumHiddenLayers, o.NumHiddenLayers)
	override(&c.HiddenSize, o.HiddenSize)
	override(&c.NumAttentionHeads, o.NumAttentionHeads)
	override(&c.VocabSize, o.VocabSize)
	override(&c.MaxPositionEmbeddings, o.MaxPositionEmbeddings)
	c.FFNDim = c.HiddenSize * base.FFNDim / base.HiddenSize
	c.WordEmbedProjDim = c.HiddenSize * base.WordEmbedProjDim / base.HiddenSize
	override(&c.FFNDim, o.FFNDim)
	override(&c.WordEmbedProjDim, o.WordEmbedProjDim)
	switch o.LayerNorm {
	case "":
	case "pre":
		c.DoLayerNormBefore = true
	case "post":
		c.DoLayerNormBefore = false
	default:
		return Config{}, fmt.Errorf("layer norm placement %q: want \"pre\" or \"post\"", o.LayerNorm)
	}
	dtype := o.dtype()
	if dtype != half.F16 && dtype != half.BF16 && dtype != half.F32 {
		return Config{}, fmt.Errorf("dtype %v: want F16, BF16 or F32", dtype)
	}
	c.TorchDType = torchName(dtype)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	for _, t := range synthTensors(c) {
		if n, ok := checkedProduct(t.shape); !ok || n > MaxSynthTensor {
			return Config{}, fmt.Errorf("tensor %s %v has more than %d elements, the most a synthesized tensor may have", t.name, t.shape, MaxSynthTensor)
		}
	}
	return c, nil
}

// MaxSynthTensor bounds the elements of one synthesized tensor, which WriteSynth
// holds in memory while it writes it (2^30: 2 GiB in f16, above opt-175b's largest).
const MaxSynthTensor = 1 << 30

func (o SynthOptions) dtype() half.DType {
	if o.DType == 0 {
		return half.F16
	}
	return o.DType
}

// synthTensor is one tensor of a random checkpoint and the distribution of its
// elements: normal with the given mean and standard deviation.
type synthTensor struct {
	name      string // canonical, as canonicalName returns; keys the random stream
	copyAs    string // when set, the canonical name this copy of the tensor is stored under
	shape     []int
	mean, std float64
	zeroRow   int // a row left zero (the padding token's embedding), or -1
}

// synthTensors lists the tensors of a model with config c in the order
// transformers' state_dict has them, with their initial distributions.
//
// The scales keep a forward pass at O(1) while giving it structure, unlike OPT's own
// init (N(0, 0.02) everywhere), whose attention would be almost uniform:
//   - q_proj and k_proj have std sqrt(2/hidden), so after LayerNorm and OPT's
//     head_dim^-0.5 scaling the attention logits have std about 2;
//   - v_proj, fc1 and the projections have std 1/sqrt(fan_in) (sqrt(2/fan_in) for
//     fc1, whose output goes through ReLU);
//   - out_proj and fc2 are further scaled by 1/sqrt(2*layers), so the residual
//     stream grows by O(1) over the whole stack;
//   - embeddings have std 2/sqrt(width): tied to the LM head, they give logits of std
//     about 2;
//   - LayerNorm weights are 1 + N(0, 0.05) and every bias N(0, 0.02).
func synthTensors(c Config) []synthTensor {
	h, e, f := float64(c.HiddenSize), float64(c.WordEmbedProjDim), float64(c.FFNDim)
	residual := 1 / math.Sqrt(2*float64(c.NumHiddenLayers))
	var ts []synthTensor
	add := func(name string, mean, std float64, shape ...int) {
		ts = append(ts, synthTensor{name: name, shape: shape, mean: mean, std: std, zeroRow: -1})
	}
	bias := func(name string, n int) {
		if c.EnableBias {
			add(name, 0, 0.02, n)
		}
	}
	norm := func(prefix string) {
		if c.LayerNormElementwiseAffine {
			add(prefix+".weight", 1, 0.05, c.HiddenSize)
			add(prefix+".bias", 0, 0.02, c.HiddenSize)
		}
	}
	add("embed_tokens.weight", 0, 2/math.Sqrt(e), c.VocabSize, c.WordEmbedProjDim)
	if c.PadTokenID >= 0 {
		ts[0].zeroRow = c.PadTokenID
	}
	add("embed_positions.weight", 0, 2/math.Sqrt(h), c.MaxPositionEmbeddings+PositionOffset, c.HiddenSize)
	if c.HasProjection() {
		add("project_out.weight", 0, 1/math.Sqrt(h), c.WordEmbedProjDim, c.HiddenSize)
		add("project_in.weight", 0, 1/math.Sqrt(e), c.HiddenSize, c.WordEmbedProjDim)
	}
	if c.HasFinalLayerNorm() {
		norm("final_layer_norm")
	}
	for i := range c.NumHiddenLayers {
		p := "layers." + strconv.Itoa(i) + "."
		for _, proj := range []struct {
			name string
			std  float64
		}{
			{"k_proj", math.Sqrt(2 / h)},
			{"v_proj", 1 / math.Sqrt(h)},
			{"q_proj", math.Sqrt(2 / h)},
			{"out_proj", residual / math.Sqrt(h)},
		} {
			add(p+"self_attn."+proj.name+".weight", 0, proj.std, c.HiddenSize, c.HiddenSize)
			bias(p+"self_attn."+proj.name+".bias", c.HiddenSize)
		}
		norm(p + "self_attn_layer_norm")
		add(p+"fc1.weight", 0, math.Sqrt(2/h), c.FFNDim, c.HiddenSize)
		bias(p+"fc1.bias", c.FFNDim)
		add(p+"fc2.weight", 0, residual*math.Sqrt(2/f), c.HiddenSize, c.FFNDim)
		bias(p+"fc2.bias", c.HiddenSize)
		norm(p + "final_layer_norm")
	}
	return ts
}

// nbytes is the size of the tensor's data in dtype.
func (t synthTensor) nbytes(dtype half.DType) int64 {
	n, _ := checkedProduct(t.shape)
	return int64(n) * int64(dtype.Size())
}

// bytes draws the tensor's elements from a stream keyed by seed and its name.
func (t synthTensor) bytes(seed uint64, dtype half.DType) []byte {
	key := fnv.New64a()
	key.Write([]byte(t.name))
	rng := rand.New(rand.NewPCG(seed, key.Sum64()))
	numel, _ := checkedProduct(t.shape)
	row := make([]float32, t.shape[len(t.shape)-1])
	rowBytes := len(row) * dtype.Size()
	data := make([]byte, numel*dtype.Size())
	for r := range numel / len(row) {
		for j := range row {
			row[j] = float32(t.mean + t.std*rng.NormFloat64())
		}
		if r == t.zeroRow {
			clear(row)
		}
		dtype.Encode(data[r*rowBytes:(r+1)*rowBytes], row)
	}
	return data
}

// synthPlan is a random checkpoint ready to write.
type synthPlan struct {
	config  Config
	dtype   half.DType
	seed    uint64
	prefix  string
	tensors []synthTensor
	lmHead  bool
	corpus  string // tokenizer training text; "" for no tokenizer
	ctx     context.Context
}

// tensorBytes is t's data, or the context's error once the write is cancelled.
func (p *synthPlan) tensorBytes(t synthTensor) ([]byte, error) {
	if err := p.ctx.Err(); err != nil {
		return nil, err
	}
	return t.bytes(p.seed, p.dtype), nil
}

// storedName is the name t is written under.
func (p *synthPlan) storedName(t synthTensor) string {
	name := t.name
	if t.copyAs != "" {
		name = t.copyAs
	}
	if name == "lm_head.weight" {
		return name
	}
	return p.prefix + name
}

// WriteSynth writes a random OPT checkpoint directory: config.json, and the weights
// in the formats o asks for. dir must not exist or be empty. The directory is built
// beside dir and renamed into place, so dir never holds a partial checkpoint.
func WriteSynth(dir string, o SynthOptions) error {
	return WriteSynthContext(context.Background(), dir, o)
}

// WriteSynthContext is WriteSynth that stops, and removes what it wrote, when ctx
// is cancelled.
func WriteSynthContext(ctx context.Context, dir string, o SynthOptions) error {
	c, err := o.Config()
	if err != nil {
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	plan := &synthPlan{
		config: c, dtype: o.dtype(), seed: o.Seed, prefix: o.NamePrefix, lmHead: o.WriteLMHead,
		corpus: o.TokenizerCorpus, ctx: ctx,
	}
	switch plan.prefix {
	case "":
		plan.prefix = "model.decoder."
	case "model.decoder.", "decoder.":
	default:
		return fmt.Errorf("synth %s: name prefix %q: want \"model.decoder.\" or \"decoder.\"", dir, o.NamePrefix)
	}
	plan.tensors = synthTensors(c)
	formats := o.Formats
	if formats == 0 {
		formats = Safetensors | PyTorch
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("synth %s: directory exists and is not empty", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	if err := plan.write(tmp, formats, o.ShardBytes); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	// os.Rename will not replace a directory, even an empty one.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(tmp)
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	return nil
}

// write writes the checkpoint's files into dir.
func (p *synthPlan) write(dir string, formats Format, shardBytes int64) error {
	config, err := p.config.marshalHF()
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, ConfigFile), func(w io.Writer) error {
		_, err := w.Write(append(config, '\n'))
		return err
	}); err != nil {
		return err
	}
	if p.corpus != "" {
		if err := p.writeTokenizer(dir); err != nil {
			return err
		}
	}
	if formats&Safetensors != 0 {
		if err := p.writeFormat(dir, Safetensors, shardBytes); err != nil {
			return err
		}
	}
	if formats&PyTorch != 0 {
		if err := p.writeFormat(dir, PyTorch, shardBytes); err != nil {
			return err
		}
	}
	return nil
}

// tokenizerConfig is tokenizer_config.json as OPT's checkpoints have it: GPT-2's
// tokenizer with "</s>" as bos, eos and unk, and a bos prepended to every input.
const tokenizerConfig = `{
  "add_bos_token": true,
  "add_prefix_space": false,
  "bos_token": "</s>",
  "eos_token": "</s>",
  "errors": "replace",
  "pad_token": "<pad>",
  "tokenizer_class": "GPT2Tokenizer",
  "unk_token": "</s>"
}
`

// writeTokenizer trains a tokenizer on the corpus and writes its files.
func (p *synthPlan) writeTokenizer(dir string) error {
	vocab, merges := tokenizer.TrainTiny(p.corpus, p.config.VocabSize)
	if len(vocab) > p.config.VocabSize {
		return fmt.Errorf("vocab_size %d is smaller than the tokenizer's %d base tokens", p.config.VocabSize, len(vocab))
	}
	if err := tokenizer.Write(dir, vocab, merges); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "tokenizer_config.json"), func(w io.Writer) error {
		_, err := io.WriteString(w, tokenizerConfig)
		return err
	})
}

// writeFormat writes the weights in one format, sharded when shardBytes > 0.
func (p *synthPlan) writeFormat(dir string, format Format, shardBytes int64) error {
	tensors := p.tensors
	if p.lmHead && format == Safetensors { // a copy; torch archives share the storage instead
		head := tensors[0]
		head.copyAs = "lm_head.weight"
		tensors = append(slices.Clip(tensors), head)
	}
	var shards [][]synthTensor
	var size int64
	for _, t := range tensors {
		n := t.nbytes(p.dtype)
		if len(shards) == 0 || shardBytes > 0 && size+n > shardBytes && size > 0 {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += n
	}
	single, index, pattern := SafetensorsFile, SafetensorsIndexFile, "model-%05d-of-%05d.safetensors"
	if format == PyTorch {
		single, index, pattern = PyTorchFile, PyTorchIndexFile, "pytorch_model-%05d-of-%05d.bin"
	}
	if len(shards) == 1 { // as transformers, which writes no index for a single shard
		return writeFile(filepath.Join(dir, single), func(w io.Writer) error { return p.writeShard(w, format, shards[0]) })
	}
	weightMap := make(map[string]string)
	var total int64
	for i, shard := range shards {
		name := fmt.Sprintf(pattern, i+1, len(shards))
		for _, t := range shard {
			weightMap[p.storedName(t)] = name
			total += t.nbytes(p.dtype)
			if format == PyTorch && p.lmHead && t.name == "embed_tokens.weight" {
				weightMap["lm_head.weight"] = name
			}
		}
		if err := writeFile(filepath.Join(dir, name), func(w io.Writer) error { return p.writeShard(w, format, shard) }); err != nil {
			return err
		}
	}
	indexJSON, err := json.MarshalIndent(map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	}, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, index), func(w io.Writer) error {
		_, err := w.Write(append(indexJSON, '\n'))
		return err
	})
}

// writeShard writes tensors as one safetensors file or torch archive.
func (p *synthPlan) writeShard(w io.Writer, format Format, tensors []synthTensor) error {
	if format == Safetensors {
		sources := make([]tensorSource, len(tensors))
		for i, t := range tensors {
			sources[i] = tensorSource{
				name:  p.storedName(t),
				dtype: p.dtype,
				shape: t.shape,
				bytes: func() ([]byte, error) { return p.tensorBytes(t) },
			}
		}
		return writeSafetensors(w, sources)
	}
	var pickled []pickledTensor
	var storages []storageSource
	for i, t := range tensors {
		numel, _ := checkedProduct(t.shape)
		storage := &pickledStorage{dtype: p.dtype.String(), key: strconv.Itoa(i), numel: numel}
		view := pickledTensor{name: p.storedName(t), storage: storage, shape: t.shape, stride: rowMajorStride(t.shape)}
		pickled = append(pickled, view)
		if p.lmHead && t.name == "embed_tokens.weight" {
			view.name = "lm_head.weight"
			pickled = append(pickled, view)
		}
		storages = append(storages, storageSource{key: storage.key, bytes: func() ([]byte, error) { return p.tensorBytes(t) }})
	}
	return writeTorchZip(w, "archive", pickled, storages)
}

// rowMajorStride is the contiguous stride of shape, in elements.
func rowMajorStride(shape []int) []int {
	stride := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		stride[i] = s
		s *= shape[i]
	}
	return stride
}

// writeFile creates path, fills it through a buffer and syncs it.
func writeFile(path string, fill func(io.Writer) error) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := fill(w); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}
