package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands are the kvsim command lines README.md shows: the lines of its
// shell blocks that run kvsim, and inline code that does. Synopses (with [ or
// ...) and bare command names (`kvsim validate`) are left out.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	shell := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			shell = line == "```sh"
		case shell:
			line, _, _ = strings.Cut(line, "#")
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	for _, m := range regexp.MustCompile("`((?:go run \\./cmd/)?kvsim [^`]+)`").FindAllStringSubmatch(string(data), -1) {
		if fields := strings.Fields(m[1]); len(fields) > 3 || strings.ContainsAny(m[1], "-/.") {
			lines = append(lines, m[1])
		}
	}
	var cmds [][]string
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "go run ./cmd/kvsim ")
		if !ok {
			rest, ok = strings.CutPrefix(line, "kvsim ")
		}
		if ok && !strings.ContainsAny(rest, "[<") && !strings.Contains(rest, "...") {
			cmds = append(cmds, strings.Fields(rest))
		}
	}
	return cmds
}

// TestReadmeCommandLines runs every kvsim command line of the README with its
// context already cancelled, in a folder that holds only the shipped scenarios
// and examples (files under /tmp moved into it):
// each must get past its flags and arguments, failing only on the missing files or
// the cancellation, never with a usage error.
func TestReadmeCommandLines(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found %d command lines in README.md: %q", len(cmds), cmds)
	}
	dir := t.TempDir()
	for _, shipped := range []string{"scenarios", "examples"} { // the README's relative paths
		abs, err := filepath.Abs(filepath.Join("../..", shipped))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, shipped)); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range cmds {
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "/tmp/", filepath.Join(dir, "tmp")+"/")
		}
		var stderr bytes.Buffer
		code := run(ctx, &env{stdout: &bytes.Buffer{}, stderr: &stderr}, args)
		t.Logf("kvsim %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr.String()))
		if code == 2 || strings.Contains(stderr.String(), "usage") || strings.Contains(stderr.String(), "flag provided") {
			t.Errorf("kvsim %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
	}
}
