package main

import (
	"fmt"
	"strconv"
	"strings"
)

// deviceUsage documents the -device flag of the commands that run the OPT engine.
const deviceUsage = "engine backend: cpu, or cuda (cuda:N for GPU N; needs a build with -tags cuda)"

// parseDevice splits a -device value into its kind, "cpu" or "cuda", and a CUDA
// device ordinal.
func parseDevice(device string) (kind string, ordinal int, err error) {
	kind, num, hasNum := strings.Cut(strings.ToLower(device), ":")
	switch {
	case kind == "cpu" && !hasNum:
		return kind, 0, nil
	case kind == "cuda" && !hasNum:
		return kind, 0, nil
	case kind == "cuda":
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return "", 0, usageError{fmt.Errorf("-device %q: want cuda:N with N a device ordinal", device)}
		}
		return kind, n, nil
	}
	return "", 0, usageError{fmt.Errorf("-device %q: want cpu, cuda or cuda:N", device)}
}
