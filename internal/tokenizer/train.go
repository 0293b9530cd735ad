package tokenizer

import (
	"sort"
	"strings"
)

// TrainTiny learns a small byte-level BPE vocabulary from corpus, for tests and demos
// that need an HF-format tokenizer without downloading one. The result is
// deterministic and is accepted by New and Write.
//
// Ids follow OPT's layout: "<s>" = 0, "<pad>" = 1, "</s>" = 2, "<unk>" = 3, then the
// 256 byte tokens in byte order (ids 4-259), then one token per merge in merge order.
// The corpus is pre-tokenized as Encode does, so merges never cross a piece boundary.
// Each step merges the adjacent pair with the highest count over the corpus,
// breaking ties by the smaller left token, then the smaller right token (comparing
// their strings); pairs seen fewer than twice are not merged. Training stops when the
// vocabulary holds vocabSize tokens (never fewer than the 260 base tokens) or no pair
// is left to merge.
func TrainTiny(corpus string, vocabSize int) (map[string]int, [][2]string) {
	var tokens []string
	vocab := make(map[string]int)
	add := func(tok string) int {
		id, ok := vocab[tok]
		if !ok {
			id = len(tokens)
			vocab[tok] = id
			tokens = append(tokens, tok)
		}
		return id
	}
	for _, tok := range []string{"<s>", padToken, eosToken, "<unk>"} {
		add(tok)
	}
	var byteID [256]int
	for b := range 256 {
		byteID[b] = add(byteChars[b])
	}

	// Train on distinct pieces weighted by their counts; sort them so that the work
	// is done in the same order every time.
	counts := make(map[string]int)
	for s := corpus; len(s) > 0; {
		n := nextWord(s)
		counts[s[:n]]++
		s = s[n:]
	}
	pieces := make([]string, 0, len(counts))
	for p := range counts {
		pieces = append(pieces, p)
	}
	sort.Strings(pieces)
	words := make([][]int, len(pieces))
	for i, p := range pieces {
		for j := range len(p) {
			words[i] = append(words[i], byteID[p[j]])
		}
	}

	var merges [][2]string
	for len(tokens) < vocabSize {
		pairCounts := make(map[[2]int]int)
		for i, w := range words {
			for j := 1; j < len(w); j++ {
				pairCounts[[2]int{w[j-1], w[j]}] += counts[pieces[i]]
			}
		}
		best, bestCount := [2]int{}, 1
		for p, c := range pairCounts {
			if c > bestCount || c == bestCount && c > 1 && pairLess(tokens, p, best) {
				best, bestCount = p, c
			}
		}
		if bestCount < 2 {
			break
		}
		left, right := tokens[best[0]], tokens[best[1]]
		merges = append(merges, [2]string{left, right})
		merged := add(left + right)
		for i, w := range words {
			words[i] = mergePair(w, best, merged)
		}
	}
	return vocab, merges
}

// pairLess orders pairs of token ids by their token strings, left first.
func pairLess(tokens []string, a, b [2]int) bool {
	if c := strings.Compare(tokens[a[0]], tokens[b[0]]); c != 0 {
		return c < 0
	}
	return tokens[a[1]] < tokens[b[1]]
}

// mergePair replaces the non-overlapping occurrences of pair in w, left to right, by
// merged, the same way encoding applies a merge.
func mergePair(w []int, pair [2]int, merged int) []int {
	out := w[:0]
	for i := 0; i < len(w); i++ {
		if i+1 < len(w) && w[i] == pair[0] && w[i+1] == pair[1] {
			out = append(out, merged)
			i++
			continue
		}
		out = append(out, w[i])
	}
	return out
}
