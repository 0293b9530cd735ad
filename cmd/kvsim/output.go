package main

import "github.com/kvsim/kvsim/sim/atomicfile"

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
