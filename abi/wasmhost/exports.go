package wasmhost

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/kvsim/kvsim/abi/wasmhost/internal/meter"
)

// The ABI's exports, in the order instance.fns holds them.
const (
	fnVersion = iota
	fnBuffer
	fnNew
	fnInit
	fnObserve
	fnEvict
	numRequired    // the exports before this one are required; those after, optional
	fnLayerBudgets = numRequired
	fnForkSave     = fnLayerBudgets + 1
	fnForkLoad     = fnForkSave + 1
	numFns         = fnForkLoad + 1
)

var exportNames = [numFns]string{
	fnVersion: "kvpolicy_abi_version",
	fnBuffer:  "kvpolicy_buffer",
	fnNew:     "kvpolicy_new",
	fnInit:    "kvpolicy_init",
	fnObserve: "kvpolicy_observe",
	fnEvict:   "kvpolicy_evict",
	// 2.0, optional: a model pool's division among layers.
	fnLayerBudgets: "kvpolicy_layer_budgets",
	// 2.1, optional: handing the prompt's state to other instances (ABI.md §5.3).
	fnForkSave: "kvpolicy_fork_save",
	fnForkLoad: "kvpolicy_fork_load",
}

const (
	i32 = api.ValueTypeI32

	wasiModule = "wasi_snapshot_preview1"
	hostModule = "kvpolicy"
)

// checkModule checks the exports and imports against the ABI before anything runs.
// A metered module also has the meter's import; the meter has refused any export
// with the host's reserved prefix.
func checkModule(c wazero.CompiledModule, metered bool) (Info, error) {
	var info Info
	exports := c.ExportedFunctions()
	for name := range exports {
		if strings.HasPrefix(name, meter.ReservedPrefix) {
			return info, fmt.Errorf("the module exports %q: names starting with %s are reserved for the host", name, meter.ReservedPrefix)
		}
	}
	for i, name := range exportNames[:numRequired] {
		params := []api.ValueType{}
		if i == fnBuffer {
			params = []api.ValueType{i32}
		}
		if err := checkSignature(exports, name, params, []api.ValueType{i32}, true); err != nil {
			return info, err
		}
	}
	if err := checkSignature(exports, "_initialize", nil, nil, false); err != nil {
		return info, err
	}
	if _, ok := exports["_start"]; ok {
		if _, ok := exports["_initialize"]; !ok {
			return info, fmt.Errorf("the module is a WASI command (it exports _start): build a reactor instead (Go: -buildmode=c-shared; C: -mexec-model=reactor or -Wl,--no-entry)")
		}
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return info, fmt.Errorf(`missing export "memory": the module must define and export its linear memory (see abi/ABI.md)`)
	}
	if mems := c.ImportedMemories(); len(mems) > 0 {
		mod, name, _ := mems[0].Import()
		return info, fmt.Errorf("imports memory %s.%s: the module must define its own memory", mod, name)
	}
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == wasiModule:
			info.WASI = true
		case metered && mod == meter.ImportModule && name == meter.ImportName:
		case mod == hostModule && name == "log":
			if !slices.Equal(f.ParamTypes(), []api.ValueType{i32, i32}) || len(f.ResultTypes()) > 0 {
				return info, fmt.Errorf("imports kvpolicy.log as %s, want func(i32, i32)", signature(f.ParamTypes(), f.ResultTypes()))
			}
			info.Log = true
		default:
			return info, fmt.Errorf("imports %s.%s, which the host does not provide: policies may import only kvpolicy.log and, if their runtime needs it, wasi_snapshot_preview1", mod, name)
		}
	}
	return info, nil
}

// checkExports2 checks the optional exports of ABI 2.x, once the module says it
// speaks 2.x: a 1.x module's exports of those names are none of the host's business.
func checkExports2(c wazero.CompiledModule) error {
	for _, fn := range []int{fnLayerBudgets, fnForkSave, fnForkLoad} {
		if err := checkSignature(c.ExportedFunctions(), exportNames[fn], nil, []api.ValueType{i32}, false); err != nil {
			return err
		}
	}
	return nil
}

func checkSignature(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType, required bool) error {
	f, ok := exports[name]
	if !ok {
		if required {
			return fmt.Errorf("missing export %q (%s): see abi/ABI.md", name, signature(params, results))
		}
		return nil
	}
	if !slices.Equal(f.ParamTypes(), params) || !slices.Equal(f.ResultTypes(), results) {
		return fmt.Errorf("export %q is %s, want %s", name, signature(f.ParamTypes(), f.ResultTypes()), signature(params, results))
	}
	return nil
}

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		var s []string
		for _, t := range ts {
			s = append(s, api.ValueTypeName(t))
		}
		return strings.Join(s, ", ")
	}
	sig := "func(" + names(params) + ")"
	if len(results) > 0 {
		sig += " " + names(results)
	}
	return sig
}
