// Package ranking selects the k lowest-ranked ids of a list in place, without
// allocating, for eviction policies that pick victims on every decode step.
//
// Callers rank with a strict total order (break every tie, for instance by
// position), so the selected set does not depend on the input order.
package ranking

// Smallest reorders ids so that ids[:k] holds the k smallest ids under less, in no
// particular order; ids[k:] holds the rest. It runs in O(n log k) time with a
// max-heap kept in ids[:k]. k <= 0 selects nothing and k >= len(ids) selects all.
func Smallest(ids []int32, k int, less func(a, b int32) bool) {
	if k <= 0 || k >= len(ids) {
		return
	}
	heap := ids[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(heap, i, less)
	}
	for i := k; i < len(ids); i++ {
		if less(ids[i], heap[0]) {
			heap[0], ids[i] = ids[i], heap[0]
			siftDown(heap, 0, less)
		}
	}
}

// siftDown restores the max-heap order below node i.
func siftDown(heap []int32, i int, less func(a, b int32) bool) {
	for {
		child := 2*i + 1
		if child >= len(heap) {
			return
		}
		if child+1 < len(heap) && less(heap[child], heap[child+1]) {
			child++
		}
		if !less(heap[i], heap[child]) {
			return
		}
		heap[i], heap[child] = heap[child], heap[i]
		i = child
	}
}
