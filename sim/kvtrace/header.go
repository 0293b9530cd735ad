package kvtrace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/internal/half"

	"github.com/kvsim/kvsim/internal/safetensors"
)

const (
	tokensName  = "tokens"
	tokensDType = "I32"
)

// tensorSpec is one tensor as a trace's metadata dictates it.
type tensorSpec struct {
	name  string
	shape []int
	count int // elements; fits in memory once the Meta has passed Validate
}

// tensors yields the tensors of a trace with metadata m in file order: tokens, then
// q, k and (when m.HasV) v of each layer.
func (m Meta) tensors() iter.Seq[tensorSpec] {
	return func(yield func(tensorSpec) bool) {
		tokens := m.Tokens()
		if !yield(tensorSpec{tokensName, []int{tokens}, tokens}) {
			return
		}
		shape := []int{m.Heads, tokens, m.HeadDim}
		count := m.Heads * tokens * m.HeadDim
		for layer := range m.Layers {
			for _, kind := range m.kinds() {
				if !yield(tensorSpec{tensorName(kind, layer), shape, count}) {
					return
				}
			}
		}
	}
}

// kinds lists the tensors each layer of the trace holds.
func (m Meta) kinds() []Kind {
	if m.HasV {
		return []Kind{Q, K, V}
	}
	return []Kind{Q, K}
}

func tensorName(kind Kind, layer int) string {
	return "layer." + strconv.Itoa(layer) + "." + kind.String()
}

// parseTensorName inverts tensorName, accepting only the canonical spelling (no
// leading zeros or signs), and also reports "tokens" as (0, 0, true).
func parseTensorName(name string) (kind Kind, layer int, ok bool) {
	if name == tokensName {
		return 0, 0, true
	}
	rest, found := strings.CutPrefix(name, "layer.")
	if !found || len(rest) < 3 || rest[len(rest)-2] != '.' {
		return 0, 0, false
	}
	digits := rest[:len(rest)-2]
	layer, err := strconv.Atoi(digits)
	if err != nil || layer < 0 || strconv.Itoa(layer) != digits {
		return 0, 0, false
	}
	switch kind := Kind(rest[len(rest)-1]); kind {
	case Q, K, V:
		return kind, layer, true
	}
	return 0, 0, false
}

// dataSize is the number of bytes in the data buffer of a trace with metadata m whose
// layer tensors have the given element size and count per layer; ok is false if it
// does not fit in an int.
func dataSize(m Meta, elemSize, kindsPerLayer int) (size int, ok bool) {
	tokens, ok := checkedAdd(m.PromptLen, m.GenLen)
	if !ok {
		return 0, false
	}
	tokenBytes, ok := checkedMul(tokens, 4)
	if !ok {
		return 0, false
	}
	layerBytes, ok := checkedMul(m.Layers, kindsPerLayer, m.Heads, tokens, m.HeadDim, elemSize)
	if !ok {
		return 0, false
	}
	return checkedAdd(tokenBytes, layerBytes)
}

func checkedMul(factors ...int) (int, bool) {
	product := 1
	for _, f := range factors {
		if f < 0 || f != 0 && product > math.MaxInt/f {
			return 0, false
		}
		product *= f
	}
	return product, true
}

func checkedAdd(a, b int) (int, bool) {
	if a < 0 || b < 0 || a > math.MaxInt-b {
		return 0, false
	}
	return a + b, true
}

// metadataPairs lists m's metadata in header order; empty optional text is left out.
func metadataPairs(m Meta) [][2]string {
	pairs := [][2]string{
		{keyFormat, Format},
		{keyVersion, strconv.Itoa(Version)},
		{keyModel, m.Model},
		{keyLayers, strconv.Itoa(m.Layers)},
		{keyHeads, strconv.Itoa(m.Heads)},
		{keyHeadDim, strconv.Itoa(m.HeadDim)},
		{keyPromptLen, strconv.Itoa(m.PromptLen)},
		{keyGenLen, strconv.Itoa(m.GenLen)},
		{keySource, m.Source},
		{keySampleID, m.SampleID},
	}
	for _, text := range [][2]string{{keyPrompt, m.Prompt}, {keyReference, m.Reference}, {keyGenerated, m.Generated}} {
		if text[1] != "" {
			pairs = append(pairs, text)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(m.Extra)) {
		pairs = append(pairs, [2]string{key, m.Extra[key]})
	}
	return pairs
}

// encodeHeader returns the JSON header of a trace, padded with spaces so the data
// buffer that follows the 8-byte length starts aligned. m must have passed Validate.
func encodeHeader(m Meta, dtype half.DType) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"` + safetensors.MetadataKey + `":{`)
	for i, kv := range metadataPairs(m) {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, s := range kv {
			quoted, err := json.Marshal(s)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %w", kv[0], err)
			}
			b.Write(quoted)
			if j == 0 {
				b.WriteByte(':')
			}
		}
	}
	b.WriteByte('}')
	offset := 0
	for t := range m.tensors() {
		elemType, elemSize := dtype.String(), dtype.Size()
		if t.name == tokensName {
			elemType, elemSize = tokensDType, 4
		}
		end := offset + t.count*elemSize
		fmt.Fprintf(&b, `,"%s":{"dtype":"%s","shape":[`, t.name, elemType)
		for i, d := range t.shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for (8+b.Len())%safetensors.Align != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > safetensors.MaxHeader {
		return nil, fmt.Errorf("header is %d bytes, more than the %d-byte limit (is the prompt text that long?)",
			b.Len(), safetensors.MaxHeader)
	}
	return b.Bytes(), nil
}

// decodeMeta types the metadata block and validates it. HasV is left false: the
// tensors present decide it.
func decodeMeta(kv map[string]string) (Meta, error) {
	var m Meta
	lookup := func(key string) (string, error) {
		v, ok := kv[key]
		if !ok {
			return "", fmt.Errorf("metadata: missing key %q", key)
		}
		return v, nil
	}
	format, err := lookup(keyFormat)
	if err != nil {
		return m, err
	}
	if format != Format {
		return m, fmt.Errorf("metadata %s: %q, want %q", keyFormat, format, Format)
	}
	version, err := lookup(keyVersion)
	if err != nil {
		return m, err
	}
	if version != strconv.Itoa(Version) {
		return m, fmt.Errorf("metadata %s: %q, want %q (this kvtrace reads version %d only)",
			keyVersion, version, strconv.Itoa(Version), Version)
	}
	for key, value := range kv {
		if !slices.Contains(knownKeys, key) {
			if m.Extra == nil {
				m.Extra = map[string]string{}
			}
			m.Extra[key] = value
		}
	}
	required := []struct {
		key  string
		text *string
		num  *int
	}{
		{key: keyModel, text: &m.Model},
		{key: keyLayers, num: &m.Layers},
		{key: keyHeads, num: &m.Heads},
		{key: keyHeadDim, num: &m.HeadDim},
		{key: keyPromptLen, num: &m.PromptLen},
		{key: keyGenLen, num: &m.GenLen},
		{key: keySource, text: &m.Source},
		{key: keySampleID, text: &m.SampleID},
	}
	for _, r := range required {
		v, err := lookup(r.key)
		if err != nil {
			return m, err
		}
		if r.text != nil {
			*r.text = v
			continue
		}
		n, err := strconv.Atoi(v)
		if errors.Is(err, strconv.ErrRange) {
			return m, fmt.Errorf("metadata %s: %q is out of range", r.key, v)
		}
		if err != nil {
			return m, fmt.Errorf("metadata %s: %q is not an integer", r.key, v)
		}
		*r.num = n
	}
	m.Prompt, m.Reference, m.Generated = kv[keyPrompt], kv[keyReference], kv[keyGenerated]
	return m, m.Validate()
}
