//go:build wasm

package guest

import (
	"unsafe"

	"github.com/kvsim/kvsim/abi/internal/region"
)

// The ABI's exports. Each is a thin shim over srv; see abi/ABI.md for the contract.

//go:wasmexport kvpolicy_abi_version
func kvpolicyABIVersion() int32 { return region.Version }

//go:wasmexport kvpolicy_buffer
func kvpolicyBuffer(size int32) int32 {
	b := srv.buffer(size)
	if b == nil {
		return 0
	}
	return int32(uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))))
}

//go:wasmexport kvpolicy_new
func kvpolicyNew() int32 { return srv.create() }

//go:wasmexport kvpolicy_init
func kvpolicyInit() int32 { return srv.init() }

//go:wasmexport kvpolicy_observe
func kvpolicyObserve() int32 { return srv.observe() }

//go:wasmexport kvpolicy_evict
func kvpolicyEvict() int32 { return srv.evict() }

//go:wasmexport kvpolicy_layer_budgets
func kvpolicyLayerBudgets() int32 { return srv.layerBudgets() }

//go:wasmexport kvpolicy_fork_save
func kvpolicyForkSave() int32 { return srv.forkSave() }

//go:wasmexport kvpolicy_fork_load
func kvpolicyForkLoad() int32 { return srv.forkLoad() }
