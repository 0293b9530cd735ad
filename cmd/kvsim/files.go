package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kvsim/kvsim/internal/atomicfile"
)

// checkOutputs checks, before any work starts, that each named output file
// (empty: none) can be written, so that a typo in a folder name fails at once
// rather than after an hour of replay.
func checkOutputs(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := atomicfile.CheckWritable(p); err != nil {
			return err
		}
	}
	return nil
}

// readSmallFile reads a text file a flag names, of at most limit bytes, so that
// /dev/zero or a huge file by mistake fails with its name instead of filling
// memory. A pipe is read too.
func readSmallFile(flag, path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if int64(len(data)) > limit {
		return "", usageError{fmt.Errorf("%s %s: more than %d MiB; is it the file you meant?", flag, path, limit>>20)}
	}
	return string(data), nil
}
