package main

import "testing"

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		in      string
		kind    string
		ordinal int
		ok      bool
	}{
		{"cpu", "cpu", 0, true},
		{"cuda", "cuda", 0, true},
		{"CUDA:3", "cuda", 3, true},
		{"cuda:", "", 0, false},
		{"cuda:-1", "", 0, false},
		{"cpu:1", "", 0, false},
		{"tpu", "", 0, false},
	} {
		kind, ordinal, err := parseDevice(c.in)
		if (err == nil) != c.ok || kind != c.kind || ordinal != c.ordinal {
			t.Errorf("parseDevice(%q) = %q, %d, %v; want %q, %d, ok %v", c.in, kind, ordinal, err, c.kind, c.ordinal, c.ok)
		}
	}
}
