//go:build cuda

package cuda

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"time"
	"unsafe"

	"gorgonia.org/cu"
)

//go:embed kernels/*.ptx
var ptxFiles embed.FS

// Ptr is a device address. The zero Ptr is the null pointer that nullable kernel
// parameters accept.
type Ptr uintptr

// Add returns p offset by n bytes.
func (p Ptr) Add(n int) Ptr { return p + Ptr(n) }

// kernel is one loaded __global__ function.
type kernel struct {
	name string
	fn   cu.Function
}

// kernelSet holds every kernel of kernels/*.cu, looked up once at Open.
type kernelSet struct {
	gemm, gemv                             kernel
	layerNorm, embed                       kernel
	scatter, evict                         kernel
	scoresDecode, scoresTiled, softmax     kernel
	valuesSplit, valuesReduce, valuesTiled kernel
	fillUniform                            kernel
}

// modules names each PTX file's kernels, and where Open stores them.
func (k *kernelSet) modules() map[string][]*kernel {
	bind := func(dst *kernel, name string) *kernel { dst.name = name; return dst }
	return map[string][]*kernel{
		"linear.ptx": {bind(&k.gemm, "gemm_f16w"), bind(&k.gemv, "gemv_f16w")},
		"norm.ptx":   {bind(&k.layerNorm, "layernorm_f32"), bind(&k.embed, "embed_rows")},
		"attention.ptx": {
			bind(&k.scatter, "kv_scatter"), bind(&k.evict, "kv_evict"),
			bind(&k.scoresDecode, "attn_scores_decode"), bind(&k.scoresTiled, "attn_scores_tiled"),
			bind(&k.softmax, "attn_softmax"), bind(&k.valuesSplit, "attn_pv_split"),
			bind(&k.valuesReduce, "attn_pv_reduce"), bind(&k.valuesTiled, "attn_pv_tiled"),
		},
		"random.ptx": {bind(&k.fillUniform, "fill_uniform_f16")},
	}
}

// Counters count the driver calls that cost a round trip or a launch, so that
// callers can report them per token.
type Counters struct {
	Launches  int64 // kernel launches
	Uploads   int64 // host-to-device copies
	Downloads int64 // device-to-host copies
	Syncs     int64 // waits for the device
}

// Device is one GPU with its primary context retained, kvsim's kernels loaded, and
// two streams: compute, on which kernels and uploads run in order, and copies, on
// which device-to-host copies of attention rows overlap later kernels.
//
// # Notes
//
//   - A Device is used by one goroutine at a time. Every method makes the context
//     current on the calling OS thread for its duration, so goroutines may migrate
//     between calls.
//   - Kernel launches are asynchronous: an error in a kernel surfaces at the next
//     Sync. Setting KVSIM_CUDA_SYNC=1 synchronizes after every launch, so that the
//     failing kernel is named (slow; for debugging).
type Device struct {
	Ordinal           int
	Name              string
	ComputeCapability [2]int
	Multiprocessors   int
	TotalMemory       int64
	Counters          Counters

	dev      cu.Device
	ctx      cu.CUContext
	modules  []cu.Module
	k        kernelSet
	compute  cu.Stream
	copies   cu.Stream
	syncEach bool
}

// Open retains device ordinal's primary context (cuDevicePrimaryCtxRetain: unlike
// cuCtxCreate, its signature is stable across CUDA 11 to 13), loads the embedded
// PTX, and creates the streams. The caller must Close the device.
func Open(ordinal int) (d *Device, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	count, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= count {
		return nil, fmt.Errorf("cuda: device %d requested, %d present", ordinal, count)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	d = &Device{Ordinal: ordinal, dev: dev, syncEach: os.Getenv("KVSIM_CUDA_SYNC") == "1"}
	if d.Name, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("cuda: device %d name: %w", ordinal, err)
	}
	attrs, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor, cu.MultiprocessorCount)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d attributes: %w", ordinal, err)
	}
	d.ComputeCapability = [2]int{attrs[0], attrs[1]}
	d.Multiprocessors = attrs[2]
	if d.ComputeCapability[0] < 8 {
		return nil, fmt.Errorf("cuda: %s has compute capability %d.%d; kvsim's kernels need 8.0 or newer", d.Name, attrs[0], attrs[1])
	}
	if d.TotalMemory, err = dev.TotalMem(); err != nil {
		return nil, fmt.Errorf("cuda: device %d memory: %w", ordinal, err)
	}
	if d.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: retaining the primary context of device %d: %w", ordinal, err)
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err = cu.SetCurrentContext(d.ctx); err != nil {
		return nil, fmt.Errorf("cuda: making the context of device %d current: %w", ordinal, err)
	}
	for file, kernels := range d.k.modules() {
		ptx, err := ptxFiles.ReadFile("kernels/" + file)
		if err != nil {
			return nil, fmt.Errorf("cuda: embedded %s: %w", file, err)
		}
		log := make([]byte, 8192)
		mod, err := cu.LoadDataEx(string(ptx), &cu.JITErrorLogBuffer{Buffer: log})
		if err != nil {
			return nil, fmt.Errorf("cuda: JIT-compiling %s for %s: %w: %s", file, d.Name, err, cString(log))
		}
		d.modules = append(d.modules, mod)
		for _, k := range kernels {
			if k.fn, err = mod.Function(k.name); err != nil {
				return nil, fmt.Errorf("cuda: kernel %s in %s: %w", k.name, file, err)
			}
		}
	}
	if d.compute, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("cuda: creating a stream: %w", err)
	}
	if d.copies, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("cuda: creating a stream: %w", err)
	}
	return d, nil
}

// cString returns the NUL-terminated prefix of b.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Close releases the streams, the modules and the primary context. Device memory the
// caller still holds is freed with the context when no other user retains it.
func (d *Device) Close() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var errs []error
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		errs = append(errs, err)
	}
	for _, s := range []*cu.Stream{&d.compute, &d.copies} {
		if *s != (cu.Stream{}) {
			errs = append(errs, s.Destroy())
		}
	}
	for _, m := range d.modules {
		errs = append(errs, m.Unload())
	}
	d.modules = nil
	errs = append(errs, d.dev.ReleasePrimaryCtx())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cuda: closing device %d: %w", d.Ordinal, err)
	}
	return nil
}

// bind pins the calling goroutine to its OS thread and makes the context current on
// it; the returned function unpins.
func (d *Device) bind() func() {
	runtime.LockOSThread()
	// The primary context was made current once at Open; setting it again only
	// stores a thread-local pointer and cannot fail for a retained context.
	_ = cu.SetCurrentContext(d.ctx)
	return runtime.UnlockOSThread
}

// Alloc allocates n bytes of device memory, zeroed.
func (d *Device) Alloc(n int) (Ptr, error) {
	defer d.bind()()
	if n <= 0 {
		return 0, fmt.Errorf("cuda: allocating %d bytes", n)
	}
	p, err := cu.MemAlloc(int64(n))
	if err != nil {
		free, total, _ := cu.MemInfo()
		return 0, fmt.Errorf("cuda: allocating %d MiB (%d of %d MiB free): %w", n>>20, free>>20, total>>20, err)
	}
	if err := cu.MemsetD8Async(p, 0, int64(n), d.compute); err != nil {
		cu.MemFree(p)
		return 0, fmt.Errorf("cuda: zeroing %d bytes: %w", n, err)
	}
	return Ptr(p), nil
}

// Free releases memory from Alloc. Freeing 0 does nothing.
func (d *Device) Free(p Ptr) error {
	if p == 0 {
		return nil
	}
	defer d.bind()()
	if err := cu.MemFree(cu.DevicePtr(p)); err != nil {
		return fmt.Errorf("cuda: freeing %#x: %w", uintptr(p), err)
	}
	return nil
}

// Upload copies src to dst on the compute stream, after the work queued before it.
// It returns once src may be reused: cuMemcpyHtoDAsync from pageable memory stages
// the bytes before returning.
func (d *Device) Upload(dst Ptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	defer d.bind()()
	d.Counters.Uploads++
	if err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src)), d.compute); err != nil {
		return fmt.Errorf("cuda: uploading %d bytes: %w", len(src), err)
	}
	return nil
}

// Download copies len(dst) bytes from src once the compute stream's queued work is
// done, and waits for them.
func (d *Device) Download(dst []byte, src Ptr) error {
	if len(dst) == 0 {
		return nil
	}
	defer d.bind()()
	d.Counters.Downloads++
	d.Counters.Syncs++
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst)), d.compute); err != nil {
		return fmt.Errorf("cuda: downloading %d bytes: %w", len(dst), err)
	}
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: downloading %d bytes: %w", len(dst), err)
	}
	return nil
}

// CopyDevice copies n bytes between device buffers on the compute stream.
func (d *Device) CopyDevice(dst, src Ptr, n int) error {
	defer d.bind()()
	if err := cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), int64(n), d.compute); err != nil {
		return fmt.Errorf("cuda: device copy of %d bytes: %w", n, err)
	}
	return nil
}

// Sync waits for both streams and reports the first asynchronous error.
func (d *Device) Sync() error {
	defer d.bind()()
	d.Counters.Syncs++
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: device %d: %w", d.Ordinal, err)
	}
	if err := d.copies.Synchronize(); err != nil {
		return fmt.Errorf("cuda: device %d (copy stream): %w", d.Ordinal, err)
	}
	return nil
}

// dim3 is a grid or block shape.
type dim3 struct{ x, y, z int }

// Kernel arguments are passed as 8-byte slots, the width gorgonia.org/cu's Launch
// copies per parameter; the driver reads each parameter's own size from its low
// bytes (little-endian), so 32-bit ints and floats sit in the low half.
func argPtr(p Ptr) uint64       { return uint64(p) }
func argInt(v int) uint64       { return uint64(uint32(int32(v))) }
func argInt64(v int64) uint64   { return uint64(v) }
func argFloat(v float32) uint64 { return uint64(math.Float32bits(v)) }

// launch queues k on the compute stream.
func (d *Device) launch(k *kernel, grid, block dim3, args ...uint64) error {
	if grid.x <= 0 || grid.y <= 0 || grid.z <= 0 {
		return nil // nothing to do: an empty problem
	}
	defer d.bind()()
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	d.Counters.Launches++
	if err := k.fn.Launch(grid.x, grid.y, grid.z, block.x, block.y, block.z, 0, d.compute, params); err != nil {
		return fmt.Errorf("cuda: launching %s: %w", k.name, err)
	}
	if d.syncEach {
		if err := d.compute.Synchronize(); err != nil {
			return fmt.Errorf("cuda: kernel %s: %w", k.name, err)
		}
	}
	return nil
}

// Timer measures device time between two points of the compute stream.
type Timer struct {
	d          *Device
	start, end cu.Event
}

// StartTimer records the start event on the compute stream.
func (d *Device) StartTimer() (*Timer, error) {
	defer d.bind()()
	t := &Timer{d: d}
	var err error
	if t.start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return nil, fmt.Errorf("cuda: creating an event: %w", err)
	}
	if t.end, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		cu.DestroyEvent(&t.start)
		return nil, fmt.Errorf("cuda: creating an event: %w", err)
	}
	if err := t.start.Record(d.compute); err != nil {
		t.destroy()
		return nil, fmt.Errorf("cuda: recording an event: %w", err)
	}
	return t, nil
}

// Stop records the end event, waits for it and returns the device time elapsed since
// StartTimer. The timer cannot be used again.
func (t *Timer) Stop() (time.Duration, error) {
	defer t.d.bind()()
	defer t.destroy()
	if err := t.end.Record(t.d.compute); err != nil {
		return 0, fmt.Errorf("cuda: recording an event: %w", err)
	}
	t.d.Counters.Syncs++
	if err := t.end.Synchronize(); err != nil {
		return 0, fmt.Errorf("cuda: waiting for an event: %w", err)
	}
	ms, err := t.start.Elapsed(t.end)
	if err != nil {
		return 0, fmt.Errorf("cuda: reading an event timer: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

func (t *Timer) destroy() {
	cu.DestroyEvent(&t.start)
	cu.DestroyEvent(&t.end)
}

// CopyBandwidth measures device-to-device copy bandwidth in bytes per second,
// counting bytes read plus bytes written, as the median of reps timed copies of n
// bytes after one warm-up. It is the HBM ceiling that decode is judged against.
func (d *Device) CopyBandwidth(n, reps int) (float64, error) {
	src, err := d.Alloc(n)
	if err != nil {
		return 0, err
	}
	defer d.Free(src)
	dst, err := d.Alloc(n)
	if err != nil {
		return 0, err
	}
	defer d.Free(dst)
	if err := d.CopyDevice(dst, src, n); err != nil {
		return 0, err
	}
	times := make([]time.Duration, 0, reps)
	for range reps {
		t, err := d.StartTimer()
		if err != nil {
			return 0, err
		}
		if err := d.CopyDevice(dst, src, n); err != nil {
			return 0, err
		}
		elapsed, err := t.Stop()
		if err != nil {
			return 0, err
		}
		times = append(times, elapsed)
	}
	median := medianDuration(times)
	if median <= 0 {
		return 0, fmt.Errorf("cuda: copy of %d bytes timed at %v", n, median)
	}
	return 2 * float64(n) / median.Seconds(), nil
}

func medianDuration(ts []time.Duration) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	ts = slices.Clone(ts)
	slices.Sort(ts)
	return ts[len(ts)/2]
}
