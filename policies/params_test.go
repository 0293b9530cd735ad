package policies

import "testing"

// A table parsed from JSON hands the same bytes on (the scenario's encoding is the
// one a WASM guest decodes); a table built from values is encoded once.
func TestParamsJSON(t *testing.T) {
	in := []byte(`{"window": 8, "decode":"recency"}`)
	p, err := ParseParams(in)
	if err != nil {
		t.Fatal(err)
	}
	if js, err := p.JSON(); err != nil || string(js) != string(in) {
		t.Errorf("parsed table: JSON() = %s, %v; want %s", js, err, in)
	}
	if got := p.Int("window", 0); got != 8 {
		t.Errorf("window = %d, want 8", got)
	}
	if err := p.Err(); err == nil {
		t.Error("Err() = nil with the decode key never read; want an unknown-key error")
	}
	q := NewParams(map[string]any{"sink": 4.0})
	if js, err := q.JSON(); err != nil || string(js) != `{"sink":4}` {
		t.Errorf("built table: JSON() = %s, %v; want {\"sink\":4}", js, err)
	}
	// A scenario's policy without a params table encodes as null: guests get {}.
	for _, js := range []string{"null", ""} {
		n, err := ParseParams([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := n.JSON(); err != nil || string(got) != "{}" {
			t.Errorf("table %q: JSON() = %s, %v; want {}", js, got, err)
		}
	}
}
