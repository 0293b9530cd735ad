package policies

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// Params is a policy's parameter table, decoded from the JSON object that every host
// builds from the scenario's params table. Getters record the first bad value; Err
// reports it, or the first key no getter asked for.
type Params struct {
	js     []byte // the JSON the table was parsed from, if it was
	values map[string]any
	used   map[string]bool
	err    error
}

// ParseParams decodes a JSON object. Empty input is an empty table.
func ParseParams(js []byte) (*Params, error) {
	p := &Params{js: js, values: map[string]any{}, used: map[string]bool{}}
	if len(js) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(js, &p.values); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if p.values == nil { // null: no table, which crosses the ABI as {} (ABI.md §3)
		p.values, p.js = map[string]any{}, nil
	}
	return p, nil
}

// NewParams wraps an already decoded table (values as encoding/json produces them).
func NewParams(values map[string]any) *Params {
	if values == nil {
		values = map[string]any{}
	}
	return &Params{values: values, used: map[string]bool{}}
}

// JSON encodes the table, for hosts that pass it across a boundary. A table parsed
// from JSON returns those bytes, so that the scenario's encoding is the one a guest
// decodes.
func (p *Params) JSON() ([]byte, error) {
	if len(p.js) > 0 {
		return p.js, nil
	}
	return json.Marshal(p.values)
}

func (p *Params) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
}

func (p *Params) lookup(key string) (any, bool) {
	p.used[key] = true
	v, ok := p.values[key]
	return v, ok
}

// Has reports whether the table sets key.
func (p *Params) Has(key string) bool {
	_, ok := p.values[key]
	return ok
}

// Float returns key as a number, or def when absent.
func (p *Params) Float(key string, def float64) float64 {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	f, ok := number(v)
	if !ok {
		p.fail("param %q: want a number, got %v", key, v)
		return def
	}
	return f
}

// Int returns key as an integer, or def when absent.
func (p *Params) Int(key string, def int) int {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	f, ok := number(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		p.fail("param %q: want an integer, got %v", key, v)
		return def
	}
	return int(f)
}

// Bool returns key as a boolean, or def when absent.
func (p *Params) Bool(key string, def bool) bool {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		p.fail("param %q: want true or false, got %v", key, v)
		return def
	}
	return b
}

// String returns key as a string, or def when absent. With choices, any other value
// is an error.
func (p *Params) String(key, def string, choices ...string) string {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		p.fail("param %q: want a string, got %v", key, v)
		return def
	}
	if len(choices) > 0 {
		for _, c := range choices {
			if s == c {
				return s
			}
		}
		p.fail("param %q: %q is not one of %q", key, s, choices)
		return def
	}
	return s
}

// Check records err (if non-nil and no error came before) against key.
func (p *Params) Check(key string, ok bool, format string, args ...any) {
	if !ok {
		p.fail("param %q: "+format, append([]any{key}, args...)...)
	}
}

// Err returns the first bad value, or an error naming the keys nobody asked for.
func (p *Params) Err() error {
	if p.err != nil {
		return p.err
	}
	var unknown []string
	for k := range p.values {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown param %q", unknown[0])
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
