package policies

// AddRow adds each probability of row, widened to float64, to the sum of the same
// index in dst: the column sums accumulating policies keep. dst must be at least as
// long as row.
//
// The loop is unrolled by hand: Go's WASM backend runs a function as a dispatch loop
// over its basic blocks, and a WASM host meters every pass, so that a policy built
// with the Go guest SDK pays per iteration far more than per addition; four additions
// an iteration make the prompt's column sums about 3× faster there, and the sums are
// the same (each is its own chain of additions, in row order).
func AddRow(dst []float64, row []float32) {
	dst = dst[:len(row)]
	i := 0
	for ; i+4 <= len(row); i += 4 {
		d, r := dst[i:i+4:i+4], row[i:i+4:i+4]
		d[0] += float64(r[0])
		d[1] += float64(r[1])
		d[2] += float64(r[2])
		d[3] += float64(r[3])
	}
	for ; i < len(row); i++ {
		dst[i] += float64(row[i])
	}
}

// AddRowScaled is AddRow with each probability multiplied by w (after widening).
func AddRowScaled(dst []float64, row []float32, w float64) {
	dst = dst[:len(row)]
	i := 0
	for ; i+4 <= len(row); i += 4 {
		d, r := dst[i:i+4:i+4], row[i:i+4:i+4]
		d[0] += float64(r[0]) * w
		d[1] += float64(r[1]) * w
		d[2] += float64(r[2]) * w
		d[3] += float64(r[3]) * w
	}
	for ; i < len(row); i++ {
		dst[i] += float64(row[i]) * w
	}
}
