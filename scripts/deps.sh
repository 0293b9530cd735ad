#!/usr/bin/env bash
# Prints kvsim's package graph: each package and the kvsim packages it imports (tests
# left out), one package per line. The README's Layout section describes its shape.
set -euo pipefail
cd "$(dirname "$0")/.."
module=$(go list -m)
go list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' ./... |
  awk -v m="$module/" '{
    line = substr($1, length(m) + 1) " ->"
    for (i = 2; i <= NF; i++) if (index($i, m) == 1) line = line " " substr($i, length(m) + 1)
    print line
  }'
