//go:build !purego

package kernel

import (
	"sync"
	"unsafe"
)

// MatMulNT on amd64 follows the usual blocked scheme. B is copied, panelWidth rows
// at a time and blockK columns deep, into a transposed panel so that each step of
// the reduction reads panelWidth consecutive B values; a register tile of C is then
// updated with one broadcast A element times those vectors per step. A is read in
// place. The panel (32 KiB) stays in L1 while every row block of A streams past it;
// blockM rows of A by blockK columns (240 KiB) stay in L2.
const (
	panelWidth = 32
	blockK     = 256
	blockM     = 240 // a multiple of both tile heights
	// Below gemvRows rows, packing B costs more than it saves: each row of A is
	// multiplied by B directly.
	gemvRows = 4
)

// tileKernel computes a rows×cols block of C from rows rows of A (stride lda) and
// cols columns of a packed panel: C = A·panel, or C += A·panel if accumulate.
type tileKernel struct {
	rows, cols int
	fn         func(kc int, a *float32, lda int, panel *float32, c *float32, ldc int, accumulate bool)
}

var (
	tile6x16 = tileKernel{rows: 6, cols: 16, fn: tile6x16AVX2}
	tile8x32 = tileKernel{rows: 8, cols: 32, fn: tile8x32AVX512}
)

//go:noescape
func tile6x16AVX2(kc int, a *float32, lda int, panel *float32, c *float32, ldc int, accumulate bool)

//go:noescape
func tile8x32AVX512(kc int, a *float32, lda int, panel *float32, c *float32, ldc int, accumulate bool)

// packPanelAVX2 transposes 8 rows of B (stride ldb) by kc columns, kc a positive
// multiple of 8, into panel[p*panelWidth+j] for j < 8.
//
//go:noescape
func packPanelAVX2(kc int, b *float32, ldb int, panel *float32)

// gemvNTAVX2 sets c[j] = Σ_{p<k} a[p]·b[j*ldb+p] for j < n.
//
//go:noescape
func gemvNTAVX2(n, k int, a *float32, b *float32, ldb int, c *float32)

// tailMask is read by gemvNTAVX2 at byte offset 32-4·r to get a VMASKMOVPS mask
// selecting the first r lanes.
var tailMask = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

// workspace is the scratch memory of one MatMulNT call, pooled because attention
// issues many small products.
type workspace struct {
	panel []float32 // blockK×panelWidth, 64-byte aligned
	edgeA []float32 // the last, partial row block of A, zero-padded to a full tile
	tile  []float32 // a partial tile of C, computed here and then copied out
}

var workspaces = sync.Pool{New: func() any {
	const align = 64 / 4
	buf := make([]float32, blockK*panelWidth+align)
	off := int(uintptr(unsafe.Pointer(&buf[0])) / 4 % align)
	if off != 0 {
		off = align - off
	}
	return &workspace{
		panel: buf[off : off+blockK*panelWidth],
		edgeA: make([]float32, 8*blockK),
		tile:  make([]float32, 8*panelWidth),
	}
}}

func matMulNTTiled(t *tileKernel, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	matMulNTPanels(t, m, n, k, a, lda, b, ldb, nil, c, ldc)
}

// packedPanels packs the n×k matrix b into dst (reused when large enough), 64-byte
// aligned: for each block of blockK columns starting at pc (kc deep), panel jc/panelWidth
// starts at pc·panels·panelWidth + jc/panelWidth·kc·panelWidth, with panels =
// ⌈n/panelWidth⌉, each laid out as packPanel writes it.
func packedPanels(n, k int, b []float32, ldb int, dst []float32) []float32 {
	panels := (n + panelWidth - 1) / panelWidth
	size := panels * panelWidth * k
	const align = 64 / 4
	if cap(dst) < size+align {
		dst = make([]float32, size+align)
	}
	dst = dst[:cap(dst)]
	off := int(uintptr(unsafe.Pointer(&dst[0])) / 4 % align)
	if off != 0 {
		off = align - off
	}
	dst = dst[off : off+size]
	for pc := 0; pc < k; pc += blockK {
		kc := min(blockK, k-pc)
		for jc := 0; jc < n; jc += panelWidth {
			packPanel(dst[pc*panels*panelWidth+jc/panelWidth*kc*panelWidth:], b[jc*ldb:], ldb, pc, min(panelWidth, n-jc), kc)
		}
	}
	return dst
}

// matMulNTPanels is matMulNTTiled reading B's panels from packed (packedPanels of
// at least n rows of b), or packing them as it goes when packed is nil. A panel
// packed from more rows than n holds real values where packPanel would put zeros;
// they only reach tile lanes that are thrown away, so the results are the same.
func matMulNTPanels(t *tileKernel, m, n, k int, a []float32, lda int, b []float32, ldb int, packed []float32, c []float32, ldc int) {
	if k == 0 {
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	if m < gemvRows {
		for i := range m {
			gemvNTAVX2(n, k, &a[i*lda], &b[0], ldb, &c[i*ldc])
		}
		return
	}
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	panels := len(packed) / (panelWidth * k) // of the packed B
	for pc := 0; pc < k; pc += blockK {
		kc := min(blockK, k-pc)
		accumulate := pc > 0
		for ic := 0; ic < m; ic += blockM {
			mc := min(blockM, m-ic)
			full := mc - mc%t.rows // rows covered by whole tiles
			edgeRows := mc - full
			if edgeRows > 0 {
				edge := ws.edgeA[:t.rows*kc]
				for i := range edgeRows {
					row := (ic + full + i) * lda
					copy(edge[i*kc:(i+1)*kc], a[row+pc:row+pc+kc])
				}
				clear(edge[edgeRows*kc:])
			}
			for jc := 0; jc < n; jc += panelWidth {
				nc := min(panelWidth, n-jc)
				source := ws.panel
				if packed != nil {
					source = packed[pc*panels*panelWidth+jc/panelWidth*kc*panelWidth:]
				} else {
					packPanel(ws.panel, b[jc*ldb:], ldb, pc, nc, kc)
				}
				for jt := 0; jt < nc; jt += t.cols {
					cols := min(t.cols, nc-jt)
					panel := &source[jt]
					for ir := 0; ir < full; ir += t.rows {
						i := ic + ir
						out := i*ldc + jc + jt
						if cols == t.cols {
							t.fn(kc, &a[i*lda+pc], lda, panel, &c[out], ldc, accumulate)
							continue
						}
						t.fn(kc, &a[i*lda+pc], lda, panel, &ws.tile[0], t.cols, false)
						mergeTile(c[out:], ldc, ws.tile, t.cols, t.rows, cols, accumulate)
					}
					if edgeRows > 0 {
						t.fn(kc, &ws.edgeA[0], kc, panel, &ws.tile[0], t.cols, false)
						mergeTile(c[(ic+full)*ldc+jc+jt:], ldc, ws.tile, t.cols, edgeRows, cols, accumulate)
					}
				}
			}
		}
	}
}

// packPanel fills panel[p*panelWidth+j] = b[j*ldb+pc+p] for p < kc, j < nc, and
// zeroes the columns from nc to panelWidth so that partial tiles compute finite
// values in the lanes that are thrown away.
func packPanel(panel, b []float32, ldb, pc, nc, kc int) {
	kc8 := kc &^ 7
	nc8 := nc &^ 7
	for j := 0; j < nc8 && kc8 > 0; j += 8 {
		packPanelAVX2(kc8, &b[j*ldb+pc], ldb, &panel[j])
	}
	for j := range nc {
		row := b[j*ldb+pc : j*ldb+pc+kc]
		from := kc8
		if j >= nc8 {
			from = 0
		}
		for p := from; p < kc; p++ {
			panel[p*panelWidth+j] = row[p]
		}
	}
	if nc < panelWidth {
		for p := range kc {
			clear(panel[p*panelWidth+nc : (p+1)*panelWidth])
		}
	}
}

// mergeTile copies (or adds, if accumulate) the top-left rows×cols corner of a tile
// with row stride tileStride into c.
func mergeTile(c []float32, ldc int, tile []float32, tileStride, rows, cols int, accumulate bool) {
	for i := range rows {
		src := tile[i*tileStride : i*tileStride+cols]
		dst := c[i*ldc : i*ldc+cols]
		if !accumulate {
			copy(dst, src)
			continue
		}
		for j, v := range src {
			dst[j] += v
		}
	}
}
