package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ConfigFile is the name of the model configuration in a checkpoint directory.
const ConfigFile = "config.json"

// PositionOffset is the number of rows OPT's learned position embedding keeps ahead of
// position 0 (a fairseq legacy): position p uses row p+PositionOffset of
// embed_positions, which therefore has MaxPositionEmbeddings+PositionOffset rows.
const PositionOffset = 2

// Config is the part of an OPT config.json that decides the model's shape and
// numerics, with transformers' defaults for the optional keys.
type Config struct {
	NameOrPath            string // _name_or_path, e.g. "facebook/opt-125m"; may be empty
	VocabSize             int
	HiddenSize            int // hidden_size, or d_model in older files
	NumHiddenLayers       int
	NumAttentionHeads     int
	FFNDim                int
	MaxPositionEmbeddings int
	// WordEmbedProjDim is the width of the token embedding and the LM head; when it
	// differs from HiddenSize (opt-350m: 512 against 1024), project_in and project_out
	// map between the two. Defaults to HiddenSize.
	WordEmbedProjDim int
	// DoLayerNormBefore selects pre-LN blocks (the default); opt-350m is post-LN.
	DoLayerNormBefore bool
	// RemoveFinalLayerNorm (_remove_final_layer_norm) drops the decoder's final
	// LayerNorm from pre-LN models, for checkpoints fine-tuned before transformers
	// 4.20.1. Default false.
	RemoveFinalLayerNorm bool
	// LayerNormElementwiseAffine gives every LayerNorm a weight and a bias (default).
	LayerNormElementwiseAffine bool
	// EnableBias gives the attention projections and fc1, fc2 biases (default).
	EnableBias bool
	// ActivationFunction is fc1's activation; Validate accepts only "relu", the one
	// every OPT uses.
	ActivationFunction string
	// Special token ids, -1 where config.json has null. Defaults 2, 2, 1.
	BOSTokenID, EOSTokenID, PadTokenID int
	// TorchDType is torch_dtype as written ("float16"), empty when absent. It is
	// informational: each tensor carries its own dtype.
	TorchDType string
	// TieWordEmbeddings (tie_word_embeddings, default true) makes the LM head the
	// token embedding, as transformers does, even when the file holds an
	// lm_head.weight of its own.
	TieWordEmbeddings bool
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// HasProjection reports whether the model has project_in and project_out.
func (c Config) HasProjection() bool { return c.WordEmbedProjDim != c.HiddenSize }

// HasFinalLayerNorm reports whether the decoder ends with final_layer_norm: only
// pre-LN models have it, unless RemoveFinalLayerNorm is set.
func (c Config) HasFinalLayerNorm() bool { return c.DoLayerNormBefore && !c.RemoveFinalLayerNorm }

// Limits on the sizes a config.json may give, far above the largest OPT
// (opt-175b: 96 layers, 96 heads, hidden 12288, ffn 49152), so that a corrupt or
// hostile config is refused before anything is allocated by its sizes.
const (
	MaxLayers    = 1024
	MaxHeads     = 1024
	MaxHidden    = 1 << 16
	MaxFFN       = 1 << 18
	MaxVocab     = 1 << 22
	MaxPositions = 1 << 20
)

// Validate checks that c describes a model the engine can run.
func (c Config) Validate() error {
	for _, f := range []struct {
		key        string
		value, max int
	}{
		{"vocab_size", c.VocabSize, MaxVocab},
		{"hidden_size", c.HiddenSize, MaxHidden},
		{"num_hidden_layers", c.NumHiddenLayers, MaxLayers},
		{"num_attention_heads", c.NumAttentionHeads, MaxHeads},
		{"ffn_dim", c.FFNDim, MaxFFN},
		{"max_position_embeddings", c.MaxPositionEmbeddings, MaxPositions},
		{"word_embed_proj_dim", c.WordEmbedProjDim, MaxHidden},
	} {
		if f.value <= 0 || f.value > f.max {
			return fmt.Errorf("%s is %d, want a positive size of at most %d", f.key, f.value, f.max)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.ActivationFunction != "relu" {
		return fmt.Errorf("activation_function is %q; the OPT engine implements only \"relu\"", c.ActivationFunction)
	}
	for _, id := range []struct {
		key   string
		value int
	}{{"bos_token_id", c.BOSTokenID}, {"eos_token_id", c.EOSTokenID}, {"pad_token_id", c.PadTokenID}} {
		if id.value < -1 || id.value >= c.VocabSize {
			return fmt.Errorf("%s %d is outside the vocabulary of %d", id.key, id.value, c.VocabSize)
		}
	}
	return nil
}

// LoadConfig reads and validates dir/config.json. Errors name the file and the key.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseConfig reads an OPT config.json, filling transformers' defaults, and
// validates it.
func parseConfig(data []byte) (Config, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Config{}, err
	}
	var errs []error
	// get decodes key into dst; a missing key leaves dst alone and reports false.
	get := func(key string, dst any) bool {
		raw, ok := fields[key]
		if !ok {
			return false
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", key, err))
		}
		return true
	}
	require := func(key string, dst *int) {
		if !get(key, dst) {
			errs = append(errs, fmt.Errorf("missing key %q", key))
		}
	}
	// tokenID decodes an optional id that may be null.
	tokenID := func(key string, def int) int {
		var id *int
		if !get(key, &id) {
			return def
		}
		if id == nil {
			return -1
		}
		return *id
	}

	var modelType string
	if get("model_type", &modelType) && modelType != "opt" {
		return Config{}, fmt.Errorf("model_type is %q, not \"opt\"", modelType)
	}
	c := Config{
		DoLayerNormBefore:          true,
		LayerNormElementwiseAffine: true,
		EnableBias:                 true,
		ActivationFunction:         "relu",
		TieWordEmbeddings:          true,
	}
	get("_name_or_path", &c.NameOrPath)
	require("vocab_size", &c.VocabSize)
	if !get("hidden_size", &c.HiddenSize) && !get("d_model", &c.HiddenSize) {
		errs = append(errs, errors.New(`missing key "hidden_size"`))
	}
	require("num_hidden_layers", &c.NumHiddenLayers)
	require("num_attention_heads", &c.NumAttentionHeads)
	require("ffn_dim", &c.FFNDim)
	require("max_position_embeddings", &c.MaxPositionEmbeddings)
	var proj *int
	if get("word_embed_proj_dim", &proj) && proj != nil {
		c.WordEmbedProjDim = *proj
	} else {
		c.WordEmbedProjDim = c.HiddenSize
	}
	get("do_layer_norm_before", &c.DoLayerNormBefore)
	get("_remove_final_layer_norm", &c.RemoveFinalLayerNorm)
	get("layer_norm_elementwise_affine", &c.LayerNormElementwiseAffine)
	get("enable_bias", &c.EnableBias)
	get("activation_function", &c.ActivationFunction)
	get("torch_dtype", &c.TorchDType)
	get("tie_word_embeddings", &c.TieWordEmbeddings)
	c.BOSTokenID = tokenID("bos_token_id", 2)
	c.EOSTokenID = tokenID("eos_token_id", 2)
	c.PadTokenID = tokenID("pad_token_id", 1)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// hfConfig is config.json as transformers writes it for OPT, keys in its order.
type hfConfig struct {
	NameOrPath                 string   `json:"_name_or_path"`
	RemoveFinalLayerNorm       bool     `json:"_remove_final_layer_norm"`
	ActivationFunction         string   `json:"activation_function"`
	Architectures              []string `json:"architectures"`
	BOSTokenID                 *int     `json:"bos_token_id"`
	DoLayerNormBefore          bool     `json:"do_layer_norm_before"`
	EnableBias                 bool     `json:"enable_bias"`
	EOSTokenID                 *int     `json:"eos_token_id"`
	FFNDim                     int      `json:"ffn_dim"`
	HiddenSize                 int      `json:"hidden_size"`
	LayerNormElementwiseAffine bool     `json:"layer_norm_elementwise_affine"`
	MaxPositionEmbeddings      int      `json:"max_position_embeddings"`
	ModelType                  string   `json:"model_type"`
	NumAttentionHeads          int      `json:"num_attention_heads"`
	NumHiddenLayers            int      `json:"num_hidden_layers"`
	PadTokenID                 *int     `json:"pad_token_id"`
	TieWordEmbeddings          *bool    `json:"tie_word_embeddings,omitempty"`
	TorchDType                 string   `json:"torch_dtype,omitempty"`
	VocabSize                  int      `json:"vocab_size"`
	WordEmbedProjDim           int      `json:"word_embed_proj_dim"`
}

// marshalHF encodes c as the config.json transformers would write.
func (c Config) marshalHF() ([]byte, error) {
	id := func(v int) *int {
		if v < 0 {
			return nil
		}
		return &v
	}
	var untied *bool // transformers writes the key only when it is not the default
	if !c.TieWordEmbeddings {
		untied = new(bool)
	}
	return json.MarshalIndent(hfConfig{
		NameOrPath:                 c.NameOrPath,
		RemoveFinalLayerNorm:       c.RemoveFinalLayerNorm,
		ActivationFunction:         c.ActivationFunction,
		Architectures:              []string{"OPTForCausalLM"},
		BOSTokenID:                 id(c.BOSTokenID),
		DoLayerNormBefore:          c.DoLayerNormBefore,
		EnableBias:                 c.EnableBias,
		EOSTokenID:                 id(c.EOSTokenID),
		FFNDim:                     c.FFNDim,
		HiddenSize:                 c.HiddenSize,
		LayerNormElementwiseAffine: c.LayerNormElementwiseAffine,
		MaxPositionEmbeddings:      c.MaxPositionEmbeddings,
		ModelType:                  "opt",
		NumAttentionHeads:          c.NumAttentionHeads,
		NumHiddenLayers:            c.NumHiddenLayers,
		PadTokenID:                 id(c.PadTokenID),
		TieWordEmbeddings:          untied,
		TorchDType:                 c.TorchDType,
		VocabSize:                  c.VocabSize,
		WordEmbedProjDim:           c.WordEmbedProjDim,
	}, "", "  ")
}
