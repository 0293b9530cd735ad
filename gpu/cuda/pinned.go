//go:build cuda

package cuda

// gorgonia.org/cu frees page-locked host memory but cannot allocate it, so this file
// calls the driver's cuMemHostAlloc itself.

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// Pinned is page-locked host memory: device-to-host copies into it run
// asynchronously at full bus speed, overlapping the kernels that follow.
type Pinned struct {
	d     *Device
	Bytes []byte // the whole allocation; valid until Free
}

// AllocPinned allocates n bytes of page-locked host memory.
func (d *Device) AllocPinned(n int) (*Pinned, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cuda: allocating %d pinned bytes", n)
	}
	defer d.bind()()
	var p unsafe.Pointer
	if r := C.cuMemHostAlloc(&p, C.size_t(n), 0); r != C.CUDA_SUCCESS {
		return nil, fmt.Errorf("cuda: allocating %d MiB of pinned host memory: %s", n>>20, resultName(r))
	}
	return &Pinned{d: d, Bytes: unsafe.Slice((*byte)(p), n)}, nil
}

// Free releases the memory; Bytes must not be used afterwards.
func (p *Pinned) Free() error {
	if p.Bytes == nil {
		return nil
	}
	defer p.d.bind()()
	err := cu.MemFreeHost(unsafe.Pointer(&p.Bytes[0]))
	p.Bytes = nil
	if err != nil {
		return fmt.Errorf("cuda: freeing pinned host memory: %w", err)
	}
	return nil
}

// Float32s views bytes [off, off+4n) of p as float32s.
func (p *Pinned) Float32s(off, n int) []float32 {
	if n == 0 {
		return nil
	}
	b := p.Bytes[off : off+4*n]
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// resultName is the driver's name for a CUresult, e.g. CUDA_ERROR_OUT_OF_MEMORY.
func resultName(r C.CUresult) string {
	var name *C.char
	if C.cuGetErrorName(r, &name) != C.CUDA_SUCCESS || name == nil {
		return fmt.Sprintf("CUresult %d", int(r))
	}
	return C.GoString(name)
}
