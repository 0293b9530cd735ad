// Package abi is the home of kvsim's eviction-policy ABI, version 2.0 (and 1.x, which
// the host still speaks): the normative spec (ABI.md) and the C header (kvpolicy.h)
// for guests. Its packages implement it:
// guest is the Go guest SDK, wasmhost the host on wazero, plugin the Go plugin
// loader, gobuild the builder of Go policies, and conformance the test kit that
// `kvsim policy check` runs. This package's tests hold them all to the spec: every
// builtin policy built to WASM evicts exactly like its native build, the C, WAT, Rust
// and AssemblyScript examples evict exactly like the builtins they copy (the C one
// built against 2.0 and 1.0; a Go guest of the 1.0 SDK too), a 2.0 Go guest that uses
// keys, compact rows and pools answers as its native twin, and golden bad modules
// (traps, loops, call trees, looping start functions, bad values, overdrawn pools)
// fail with exact errors while the other rows finish.
package abi
