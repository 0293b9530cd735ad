package auv

// localArea holds the slot ids of the local area (§3.4): the newest tokens, which are
// never candidates. In single-step mode it is the ring with the circular pointer ptr at
// its oldest token. In multistep mode it is the positioning region: it fills from index
// 0 (n is the positioning pointer) and is emptied by the scatter after each eviction;
// it only wraps like a ring before the first eviction, while the cache is still
// growing.
type localArea struct {
	slots []int32 // capacity L
	n     int     // tokens held
	ptr   int     // the oldest token, once full
}

// push adds the newest token. When the area is full, the oldest token leaves and is
// returned, and the new token takes its place; otherwise push returns -1.
func (l *localArea) push(slot int32) int32 {
	if l.n < len(l.slots) {
		l.slots[l.n] = slot
		l.n++
		return -1
	}
	old := l.slots[l.ptr]
	l.slots[l.ptr] = slot
	l.ptr = (l.ptr + 1) % len(l.slots)
	return old
}

// held returns the tokens in the area, in no particular order.
func (l *localArea) held() []int32 { return l.slots[:l.n] }

// reset empties the area.
func (l *localArea) reset() { l.n, l.ptr = 0, 0 }

// scatter puts fill's slot ids into the holes (-1 entries) of cand, in order, as the
// paper scatters the local area into the evicted rows; holes left over are dropped and
// ids left over are appended. cand must have room for the appended ids.
func scatter(cand, fill []int32) []int32 {
	f, out := 0, 0
	for _, s := range cand {
		if s < 0 {
			if f == len(fill) {
				continue
			}
			s = fill[f]
			f++
		}
		cand[out] = s
		out++
	}
	return append(cand[:out], fill[f:]...)
}
