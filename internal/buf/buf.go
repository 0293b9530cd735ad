// Package buf holds the slice helper every hot loop uses to reuse its buffers.
package buf

// Grow returns s resliced to n elements, or a new zeroed slice when s lacks the
// capacity. Reused elements keep their old values.
func Grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Grow2 returns rows slices of n elements each, reusing s and its rows.
func Grow2[T any](s [][]T, rows, n int) [][]T {
	if cap(s) < rows {
		s = make([][]T, rows)
	}
	s = s[:rows]
	for i := range s {
		s[i] = Grow(s[i], n)
	}
	return s
}
