package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

// TestParseInterspersed checks that flags parse before, between and after
// positional arguments, as -flag and --flag, and that "--" ends the flags.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		out        string
		verbose    bool
		positional []string
	}{
		{[]string{"a.toml", "-out", "x.json"}, "x.json", false, []string{"a.toml"}},
		{[]string{"-out", "x.json", "a.toml"}, "x.json", false, []string{"a.toml"}},
		{[]string{"a", "--out=x", "b", "-v", "c"}, "x", true, []string{"a", "b", "c"}},
		{[]string{"a", "--", "-out", "x"}, "", false, []string{"a", "-out", "x"}},
		{[]string{"-out", "--", "a", "-v"}, "--", true, []string{"a"}}, // "--" as a flag's value
		{[]string{"-v", "--", "-v"}, "", true, []string{"-v"}},
		{[]string{"-", "-v"}, "", true, []string{"-"}},
		{nil, "", false, nil},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		out := fs.String("out", "", "")
		verbose := fs.Bool("v", false, "")
		if err := parse(fs, tc.args); err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if *out != tc.out || *verbose != tc.verbose || !slices.Equal(fs.Args(), tc.positional) {
			t.Errorf("%q: out %q, v %v, args %q; want %q, %v, %q", tc.args, *out, *verbose, fs.Args(), tc.out, tc.verbose, tc.positional)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := parse(fs, []string{"a", "-nope"})
	if !errors.As(err, new(usageError)) {
		t.Errorf("an unknown flag after an argument: %v, want a usage error", err)
	}
}
