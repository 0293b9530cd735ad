package tokenizer

import (
	"strings"
	"sync"
)

// pairKey packs two adjacent token ids.
type pairKey uint64

func makePairKey(left, right int) pairKey { return pairKey(uint64(left)<<32 | uint64(right)) }

// merge is what a pair of adjacent tokens turns into, and when.
type merge struct {
	rank int32 // line order in merges.txt; lower merges first
	id   int32 // id of the merged token
}

// The cache of encoded pieces holds at most wordCacheLimit pieces of at most
// maxCachedWord bytes; when full it is emptied, which is cheap and keeps the memory of
// a long-running process flat. Longer pieces are rare and not worth keeping.
const (
	wordCacheLimit = 1 << 16
	maxCachedWord  = 64
)

// wordCache remembers the ids of recently encoded pieces.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

// appendWord appends the ids of one pre-tokenized piece.
func (t *Tokenizer) appendWord(ids []int, word string) []int {
	if len(word) == 1 {
		return append(ids, int(t.byteIDs[word[0]]))
	}
	if len(word) > maxCachedWord {
		return t.appendBPE(ids, word)
	}
	t.cache.mu.RLock()
	cached, ok := t.cache.m[word]
	t.cache.mu.RUnlock()
	if ok {
		return append(ids, cached...)
	}
	start := len(ids)
	ids = t.appendBPE(ids, word)
	own := append([]int(nil), ids[start:]...)
	t.cache.mu.Lock()
	if len(t.cache.m) >= wordCacheLimit {
		clear(t.cache.m)
	}
	// Clone the key: word points into the caller's text, which the cache must not pin.
	t.cache.m[strings.Clone(word)] = own
	t.cache.mu.Unlock()
	return ids
}

// symbol is one token of a word being merged, linked to its neighbours.
type symbol struct {
	id         int32 // -1 once merged into its left neighbour
	prev, next int32 // indices into the word's symbols; -1 at the ends
}

// candidate is an adjacent pair that has a merge, as it was when queued.
type candidate struct {
	rank            int32
	left, right     int32 // symbol indices
	leftID, rightID int32 // symbol ids when queued, to detect stale entries
}

func (c candidate) before(d candidate) bool {
	return c.rank < d.rank || c.rank == d.rank && c.left < d.left
}

// appendBPE merges the bytes of word the way transformers' GPT2Tokenizer.bpe does:
// find the lowest-ranked adjacent pair, merge all its non-overlapping occurrences left
// to right, and repeat until no adjacent pair has a merge. A heap of candidate pairs
// makes this O(n log n) rather than quadratic in the word length; merges are applied
// one rank at a time, in position order, which is exactly the order of that loop.
func (t *Tokenizer) appendBPE(ids []int, word string) []int {
	syms := make([]symbol, len(word))
	for i := range len(word) {
		syms[i] = symbol{id: t.byteIDs[word[i]], prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(syms)-1].next = -1

	var h candidateHeap
	push := func(left int32) {
		if left < 0 || syms[left].next < 0 {
			return
		}
		right := syms[left].next
		l, r := syms[left].id, syms[right].id
		if m, ok := t.merges[makePairKey(int(l), int(r))]; ok {
			h.push(candidate{rank: m.rank, left: left, right: right, leftID: l, rightID: r})
		}
	}
	for i := range int32(len(syms) - 1) {
		push(i)
	}

	var round []candidate
	for len(h) > 0 {
		// Take every queued pair of the lowest rank before merging any, so that pairs
		// the merges create wait for the next round, as in transformers' loop.
		rank := h[0].rank
		round = round[:0]
		for len(h) > 0 && h[0].rank == rank {
			round = append(round, h.pop())
		}
		for _, c := range round {
			l, r := &syms[c.left], &syms[c.right]
			if l.id != c.leftID || l.next != c.right || r.id != c.rightID {
				continue // an earlier merge in this round consumed one of its symbols
			}
			l.id = t.merges[makePairKey(int(c.leftID), int(c.rightID))].id
			l.next = r.next
			if r.next >= 0 {
				syms[r.next].prev = c.left
			}
			r.id = -1
			push(l.prev)
			push(c.left)
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, int(syms[i].id))
	}
	return ids
}

// candidateHeap is a binary min-heap ordered by candidate.before.
type candidateHeap []candidate

func (h *candidateHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s[i].before(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *candidateHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		small := i
		for _, child := range [2]int{2*i + 1, 2*i + 2} {
			if child < len(s) && s[child].before(s[small]) {
				small = child
			}
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}
