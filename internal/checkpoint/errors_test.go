package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/safetensors"
)

// rawTensor is a tensor for a hand-built checkpoint, in any stored dtype.
type rawTensor struct {
	name, dtype string
	shape       []int
	data        []byte
}

// tinyTensors returns tiny()'s config and its tensors named with prefix, in F16.
func tinyTensors(t *testing.T, prefix string) (Config, []rawTensor) {
	t.Helper()
	c, err := tiny().Config()
	if err != nil {
		t.Fatal(err)
	}
	var ts []rawTensor
	for _, st := range synthTensors(c) {
		ts = append(ts, rawTensor{prefix + st.name, "F16", st.shape, st.bytes(1, half.F16)})
	}
	return c, ts
}

// encodeSafetensors is a plain safetensors writer, separate from writeSafetensors so
// that tests can write any dtype and any header.
func encodeSafetensors(t testing.TB, ts []rawTensor) []byte {
	t.Helper()
	header := map[string]any{safetensors.MetadataKey: map[string]string{"format": "pt"}}
	var body []byte
	for _, tensor := range ts {
		header[tensor.name] = map[string]any{
			"dtype": tensor.dtype, "shape": tensor.shape,
			"data_offsets": []int{len(body), len(body) + len(tensor.data)},
		}
		body = append(body, tensor.data...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), body...)
}

// contiguousViews gives each tensor its own storage, as torch.save does for
// independent tensors.
func contiguousViews(ts []rawTensor) ([]pickledTensor, map[string][]byte) {
	var views []pickledTensor
	storages := make(map[string][]byte)
	for i, tensor := range ts {
		key := strconv.Itoa(i)
		numel, _ := checkedProduct(tensor.shape)
		views = append(views, pickledTensor{
			name:    tensor.name,
			storage: &pickledStorage{dtype: tensor.dtype, key: key, numel: numel},
			shape:   tensor.shape,
			stride:  rowMajorStride(tensor.shape),
		})
		storages[key] = tensor.data
	}
	return views, storages
}

func encodeTorchZip(t testing.TB, archive string, views []pickledTensor, storages map[string][]byte) []byte {
	t.Helper()
	var sources []storageSource
	for key, data := range storages {
		sources = append(sources, storageSource{key, func() ([]byte, error) { return data, nil }})
	}
	var out bytes.Buffer
	if err := writeTorchZip(&out, archive, views, sources); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// configMap returns c as the key-value pairs of its config.json.
func configMap(t *testing.T, c Config) map[string]any {
	t.Helper()
	data, err := c.marshalHF()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeDir writes a checkpoint directory with the given config.json and files.
func writeDir(t *testing.T, config map[string]any, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// without returns ts less the tensor called name.
func without(ts []rawTensor, name string) []rawTensor {
	return slices.DeleteFunc(slices.Clone(ts), func(r rawTensor) bool { return r.name == name })
}

// replaced returns ts with the tensor called name changed by edit.
func replaced(ts []rawTensor, name string, edit func(*rawTensor)) []rawTensor {
	ts = slices.Clone(ts)
	for i := range ts {
		if ts[i].name == name {
			edit(&ts[i])
		}
	}
	return ts
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(t *testing.T) string // returns the checkpoint directory
		want  []string                  // substrings of the error
	}{
		{
			name: "truncated safetensors",
			build: func(t *testing.T) string {
				o := tiny()
				o.Formats = Safetensors
				dir := writeSynth(t, o)
				path := filepath.Join(dir, SafetensorsFile)
				truncateFile(t, path, fileSize(t, path)-10)
				return dir
			},
			// The last tensor in the data buffer loses its end.
			want: []string{"model.safetensors", "tensor model.decoder.layers.1.final_layer_norm.bias", "truncated"},
		},
		{
			name: "safetensors cut inside its header",
			build: func(t *testing.T) string {
				o := tiny()
				o.Formats = Safetensors
				dir := writeSynth(t, o)
				truncateFile(t, filepath.Join(dir, SafetensorsFile), 100)
				return dir
			},
			want: []string{"model.safetensors", "truncated: header length says"},
		},
		{
			name: "truncated zip",
			build: func(t *testing.T) string {
				o := tiny()
				o.Formats = PyTorch
				dir := writeSynth(t, o)
				path := filepath.Join(dir, PyTorchFile)
				truncateFile(t, path, fileSize(t, path)/2)
				return dir
			},
			want: []string{"pytorch_model.bin", "not a readable zip archive"},
		},
		{
			name: "legacy torch format",
			build: func(t *testing.T) string {
				c, _ := tinyTensors(t, "model.decoder.")
				legacy := []byte("\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: legacy})
			},
			want: []string{"pytorch_model.bin: a pickle in torch's legacy (pre-1.6) format"},
		},
		{
			name: "wrong shape",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				ts = replaced(ts, "model.decoder.layers.1.fc1.weight", func(r *rawTensor) { r.shape = []int{16, 32} })
				return writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
			},
			want: []string{"model.safetensors: tensor model.decoder.layers.1.fc1.weight has shape [16 32], config.json implies [32 16]"},
		},
		{
			name: "missing tensor",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "decoder.")
				views, storages := contiguousViews(without(ts, "decoder.layers.1.fc2.bias"))
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "archive", views, storages)})
			},
			want: []string{"pytorch_model.bin: missing tensor decoder.layers.1.fc2.bias"},
		},
		{
			name: "missing final layer norm of a pre-LN model",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				ts = without(ts, "model.decoder.final_layer_norm.weight")
				return writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
			},
			want: []string{"model.safetensors: missing tensor model.decoder.final_layer_norm.weight"},
		},
		{
			name: "missing config key",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				config := configMap(t, c)
				delete(config, "ffn_dim")
				return writeDir(t, config, map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
			},
			want: []string{"config.json: missing key \"ffn_dim\""},
		},
		{
			name: "config key of the wrong type",
			build: func(t *testing.T) string {
				c, _ := tinyTensors(t, "model.decoder.")
				config := configMap(t, c)
				config["num_hidden_layers"] = "two"
				return writeDir(t, config, nil)
			},
			want: []string{"config.json: key \"num_hidden_layers\""},
		},
		{
			name: "non-relu activation",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				config := configMap(t, c)
				config["activation_function"] = "gelu"
				return writeDir(t, config, map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
			},
			want: []string{"config.json: activation_function is \"gelu\""},
		},
		{
			name: "not an OPT",
			build: func(t *testing.T) string {
				c, _ := tinyTensors(t, "model.decoder.")
				config := configMap(t, c)
				config["model_type"] = "gpt2"
				return writeDir(t, config, nil)
			},
			want: []string{"config.json: model_type is \"gpt2\""},
		},
		{
			name: "strided view past its storage",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				views, storages := contiguousViews(ts)
				for i := range views {
					if views[i].name == "model.decoder.layers.0.fc1.weight" {
						views[i].stride = []int{1, 33} // a transposed view, one element too wide
					}
				}
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "archive", views, storages)})
			},
			want: []string{"pytorch_model.bin: tensor model.decoder.layers.0.fc1.weight: stride [1 33] of size [32 16] at offset 0 runs past the 512 elements of storage"},
		},
		{
			name: "view past its storage",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				views, storages := contiguousViews(ts)
				views[3].offset = 1
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "archive", views, storages)})
			},
			want: []string{"pytorch_model.bin: tensor model.decoder.final_layer_norm.bias: elements [1, 1+16) run past the 16 of storage 3"},
		},
		{
			name: "storage record missing",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				views, storages := contiguousViews(ts)
				delete(storages, "5")
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "archive", views, storages)})
			},
			want: []string{"pytorch_model.bin: tensor", "storage archive/data/5 is missing"},
		},
		{
			name: "layer beyond the config",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				extra := ts[len(ts)-1]
				extra.name = "model.decoder.layers.2.final_layer_norm.bias"
				return writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, append(ts, extra))})
			},
			want: []string{"tensor model.decoder.layers.2.final_layer_norm.bias is in layer 2, but config.json has 2 layers"},
		},
		{
			name: "integer weights",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				ts = replaced(ts, "model.decoder.layers.0.fc2.bias", func(r *rawTensor) {
					r.dtype, r.data = "I64", make([]byte, 8*16)
				})
				return writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
			},
			want: []string{"tensor model.decoder.layers.0.fc2.bias has dtype I64"},
		},
		{
			name: "duplicate spellings",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				dup := ts[0]
				dup.name = "decoder.embed_tokens.weight"
				return writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, append(ts, dup))})
			},
			want: []string{"tensor model.decoder.embed_tokens.weight duplicates decoder.embed_tokens.weight"},
		},
		{
			name: "no weights",
			build: func(t *testing.T) string {
				c, _ := tinyTensors(t, "model.decoder.")
				return writeDir(t, configMap(t, c), nil)
			},
			want: []string{"no weights: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json exists"},
		},
		{
			name: "index points at the wrong shard",
			build: func(t *testing.T) string {
				c, ts := tinyTensors(t, "model.decoder.")
				index := map[string]any{"weight_map": map[string]string{}}
				files := map[string][]byte{
					"a.safetensors": encodeSafetensors(t, ts[:5]),
					"b.safetensors": encodeSafetensors(t, ts[5:]),
				}
				for i, tensor := range ts {
					index["weight_map"].(map[string]string)[tensor.name] = map[bool]string{true: "a.safetensors", false: "b.safetensors"}[i < 5]
				}
				index["weight_map"].(map[string]string)[ts[7].name] = "a.safetensors"
				files[SafetensorsIndexFile], _ = json.Marshal(index)
				return writeDir(t, configMap(t, c), files)
			},
			want: []string{"model.safetensors.index.json: tensor model.decoder.layers.0.self_attn.v_proj.bias is not in", "a.safetensors"},
		},
		{
			name: "index escapes the directory",
			build: func(t *testing.T) string {
				c, _ := tinyTensors(t, "model.decoder.")
				index, _ := json.Marshal(map[string]any{"weight_map": map[string]string{"lm_head.weight": "../x.bin"}})
				return writeDir(t, configMap(t, c), map[string][]byte{PyTorchIndexFile: index})
			},
			want: []string{"pytorch_model.bin.index.json: tensor lm_head.weight: shard \"../x.bin\" is not a file name"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.build(t)
			m, err := Load(dir)
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

// TestSharedStorageViews loads an archive, named the way older torch named them
// ("pytorch_model/..."), in which q, k and v of layer 0 are views at offsets into one
// storage, as after splitting a fused qkv projection.
func TestSharedStorageViews(t *testing.T) {
	c, ts := tinyTensors(t, "model.decoder.")
	views, storages := contiguousViews(ts)
	var fused []byte
	qkv := &pickledStorage{dtype: "F16", key: "qkv", numel: 3 * 16 * 16}
	want := make(map[string][]byte)
	for i := range views {
		switch name := views[i].name; name {
		case "model.decoder.layers.0.self_attn.q_proj.weight", "model.decoder.layers.0.self_attn.k_proj.weight",
			"model.decoder.layers.0.self_attn.v_proj.weight":
			want[name] = storages[views[i].storage.key]
			delete(storages, views[i].storage.key)
			views[i].storage, views[i].offset = qkv, len(fused)/2
			fused = append(fused, want[name]...)
		}
	}
	storages["qkv"] = fused
	dir := writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "pytorch_model", views, storages)})
	m := loadFormat(t, dir, PyTorch)
	l := m.Weights.Layers[0]
	for _, tensor := range []*Tensor{l.QProj.Weight, l.KProj.Weight, l.VProj.Weight} {
		if !bytes.Equal(tensor.Data, want[tensor.Name]) {
			t.Errorf("%s: wrong bytes from the shared storage", tensor.Name)
		}
	}
	// Zero copy: v_proj's bytes follow k_proj's in the mapped storage (k, v, q is
	// transformers' order).
	if gap := uintptr(unsafe.Pointer(&l.VProj.Weight.Data[0])) - uintptr(unsafe.Pointer(&l.KProj.Weight.Data[0])); gap != 16*16*2 {
		t.Errorf("v_proj starts %d bytes after k_proj, want 512", gap)
	}
}

// TestNonContiguousViews loads a pytorch_model.bin whose fc1 weight is stored
// transposed (a view with stride [1, 32], as tensor.t() saves) and whose q_proj is
// every other row of a larger storage: each gets its elements in row-major order.
func TestNonContiguousViews(t *testing.T) {
	c, ts := tinyTensors(t, "model.decoder.")
	views, storages := contiguousViews(ts)
	want := make(map[string][]byte)
	for i := range views {
		v := &views[i]
		data := storages[v.storage.key]
		switch v.name {
		case "model.decoder.layers.0.fc1.weight": // [32 16], stored as its [16 32] transpose
			want[v.name] = data
			rows, cols := v.shape[0], v.shape[1]
			transposed := make([]byte, len(data))
			for r := range rows {
				for k := range cols {
					copy(transposed[2*(k*rows+r):], data[2*(r*cols+k):2*(r*cols+k)+2])
				}
			}
			storages[v.storage.key], v.stride = transposed, []int{1, rows}
		case "model.decoder.layers.1.self_attn.q_proj.weight": // [16 16], the odd rows of [32 16]
			want[v.name] = data
			spaced := make([]byte, 2*len(data))
			for r := range 16 {
				copy(spaced[2*(2*r+1)*16:], data[2*r*16:2*(r+1)*16])
			}
			storages[v.storage.key], v.storage.numel, v.offset, v.stride = spaced, 512, 16, []int{32, 1}
		}
	}
	dir := writeDir(t, configMap(t, c), map[string][]byte{PyTorchFile: encodeTorchZip(t, "archive", views, storages)})
	w := loadFormat(t, dir, PyTorch).Weights
	for _, tensor := range []*Tensor{w.Layers[0].FC1.Weight, w.Layers[1].QProj.Weight} {
		if !bytes.Equal(tensor.Data, want[tensor.Name]) {
			t.Errorf("%s: the non-contiguous view loads other bytes", tensor.Name)
		}
	}
}

func TestUnusedTensors(t *testing.T) {
	c, ts := tinyTensors(t, "model.decoder.")
	ts = append(ts, rawTensor{"model.decoder.version", "I64", []int{1}, make([]byte, 8)})
	dir := writeDir(t, configMap(t, c), map[string][]byte{SafetensorsFile: encodeSafetensors(t, ts)})
	m := loadFormat(t, dir, Safetensors)
	if !slices.Equal(m.Unused, []string{"model.decoder.version"}) {
		t.Errorf("Unused = %v", m.Unused)
	}
}

// opt350mConfig is config.json in the layout transformers publishes for
// facebook/opt-350m (values from the model card's configuration).
const opt350mConfig = `{
  "_name_or_path": "facebook/opt-350m",
  "_remove_final_layer_norm": false,
  "activation_dropout": 0.0,
  "activation_function": "relu",
  "architectures": ["OPTForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 2,
  "do_layer_norm_before": false,
  "dropout": 0.1,
  "eos_token_id": 2,
  "ffn_dim": 4096,
  "hidden_size": 1024,
  "init_std": 0.02,
  "layerdrop": 0.0,
  "max_position_embeddings": 2048,
  "model_type": "opt",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "pad_token_id": 1,
  "prefix": "</s>",
  "torch_dtype": "float16",
  "transformers_version": "4.20.0.dev0",
  "use_cache": true,
  "vocab_size": 50272,
  "word_embed_proj_dim": 512
}`

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		name, json string
		want       Config
	}{
		{"opt-350m", opt350mConfig, Config{
			NameOrPath: "facebook/opt-350m", VocabSize: 50272, HiddenSize: 1024, NumHiddenLayers: 24,
			NumAttentionHeads: 16, FFNDim: 4096, MaxPositionEmbeddings: 2048, WordEmbedProjDim: 512,
			LayerNormElementwiseAffine: true, EnableBias: true, ActivationFunction: "relu",
			BOSTokenID: 2, EOSTokenID: 2, PadTokenID: 1, TorchDType: "float16", TieWordEmbeddings: true,
		}},
		{
			// The oldest OPT configs: d_model, no optional keys, a null projection width.
			"defaults",
			`{"vocab_size": 100, "d_model": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
			  "ffn_dim": 128, "max_position_embeddings": 64, "word_embed_proj_dim": null, "pad_token_id": null}`,
			Config{
				VocabSize: 100, HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, FFNDim: 128,
				MaxPositionEmbeddings: 64, WordEmbedProjDim: 32, DoLayerNormBefore: true,
				LayerNormElementwiseAffine: true, EnableBias: true, ActivationFunction: "relu",
				BOSTokenID: 2, EOSTokenID: 2, PadTokenID: -1, TieWordEmbeddings: true,
			},
		},
	} {
		got, err := parseConfig([]byte(c.json))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if c.name == "opt-350m" && (!got.HasProjection() || got.HasFinalLayerNorm() || got.HeadDim() != 64) {
			t.Errorf("opt-350m: projection %v, final LayerNorm %v, head dim %d", got.HasProjection(), got.HasFinalLayerNorm(), got.HeadDim())
		}
	}
}

func TestConfigRoundTrip(t *testing.T) {
	want, err := parseConfig([]byte(opt350mConfig))
	if err != nil {
		t.Fatal(err)
	}
	data, err := want.marshalHF()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseConfig(data)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("marshalHF then parseConfig: %+v, %v; want %+v", got, err, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"vocab_size": 10}`, `missing key "hidden_size"`},
		{`[1, 2]`, "cannot unmarshal array"},
		{strings.Replace(opt350mConfig, `"num_attention_heads": 16`, `"num_attention_heads": 24`, 1),
			"hidden_size 1024 is not divisible by num_attention_heads 24"},
		{strings.Replace(opt350mConfig, `"ffn_dim": 4096`, `"ffn_dim": 0`, 1), "ffn_dim is 0"},
		{strings.Replace(opt350mConfig, `"num_hidden_layers": 24`, `"num_hidden_layers": 1000000000`, 1),
			"num_hidden_layers is 1000000000, want a positive size of at most 1024"},
		{strings.Replace(opt350mConfig, `"vocab_size": 50272`, `"vocab_size": 2147483647`, 1),
			"vocab_size is 2147483647, want a positive size of at most 4194304"},
		{strings.Replace(opt350mConfig, `"pad_token_id": 1`, `"pad_token_id": 60000`, 1),
			"pad_token_id 60000 is outside the vocabulary of 50272"},
	} {
		if _, err := parseConfig([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig: %v, want an error containing %q", err, c.want)
		}
	}
}
