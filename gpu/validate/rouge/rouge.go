// Package rouge scores generated text against a reference with ROUGE-1, ROUGE-2 and
// ROUGE-L, computed exactly as Google's rouge-score package computes them (the scorer
// used in summarization papers): the same tokenizer, the same optional Porter stemmer
// (nltk's default variant), clipped n-gram counts and sentence-level LCS.
//
// For a candidate with c tokens (or n-grams), a reference with r, and an overlap of o:
// precision = o/c, recall = o/r, F1 = 2PR/(P+R). An empty side counts as one n-gram
// in the denominators of ROUGE-N (so P, R and F1 are 0, never NaN), ROUGE-L is 0 when
// either side is empty, and F1 is 0 when P+R is 0.
package rouge

// Score is one ROUGE variant's precision, recall and F1, each in [0, 1].
type Score struct {
	Precision, Recall, F1 float64
}

// Scores holds ROUGE-1 (unigrams), ROUGE-2 (bigrams) and ROUGE-L (longest common
// subsequence, sentence level: rouge-score's "rougeL", not "rougeLsum").
type Scores struct {
	R1, R2, RL Score
}

// Compute scores candidate against reference. With stem, tokens longer than three
// characters are reduced by the Porter stemmer first, as rouge-score's use_stemmer=True
// does. It matches RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference,
// candidate): note that rouge-score takes the reference (its "target") first.
func Compute(candidate, reference string, stem bool) Scores {
	cand := Tokenize(candidate, stem)
	ref := Tokenize(reference, stem)
	return Scores{
		R1: ngramScore(cand, ref, 1),
		R2: ngramScore(cand, ref, 2),
		RL: lcsScore(cand, ref),
	}
}

// ngram is an n-gram of one or two tokens; unigrams leave the second token empty,
// which no real token is.
type ngram [2]string

// ngramScore is ROUGE-N for n = 1 or 2: the overlap is the sum over distinct n-grams
// of the smaller of their counts in the two texts, so a repeated n-gram matches at
// most as often as it occurs on the other side.
func ngramScore(cand, ref []string, n int) Score {
	refCounts := ngramCounts(ref, n)
	candTotal, overlap := 0, 0
	for i := 0; i+n <= len(cand); i++ {
		candTotal++
		g := makeNgram(cand, i, n)
		if refCounts[g] > 0 { // consume one reference occurrence: this is the clipping
			refCounts[g]--
			overlap++
		}
	}
	refTotal := max(len(ref)-n+1, 0)
	return newScore(float64(overlap)/float64(max(candTotal, 1)), float64(overlap)/float64(max(refTotal, 1)))
}

func ngramCounts(tokens []string, n int) map[ngram]int {
	counts := make(map[ngram]int, len(tokens))
	for i := 0; i+n <= len(tokens); i++ {
		counts[makeNgram(tokens, i, n)]++
	}
	return counts
}

func makeNgram(tokens []string, i, n int) ngram {
	if n == 1 {
		return ngram{tokens[i]}
	}
	return ngram{tokens[i], tokens[i+1]}
}

// lcsScore is ROUGE-L: the length of the longest common subsequence of the two token
// sequences over the candidate's length (precision) and the reference's (recall).
func lcsScore(cand, ref []string) Score {
	if len(cand) == 0 || len(ref) == 0 {
		return Score{}
	}
	l := float64(lcsLength(cand, ref))
	return newScore(l/float64(len(cand)), l/float64(len(ref)))
}

// lcsLength runs the classic dynamic programme keeping one row of the table, so the
// memory is O(len(b)) however long a is.
func lcsLength(a, b []string) int {
	row := make([]int, len(b)+1) // row[j] = LCS of a[:i] and b[:j]
	for i := range a {
		diag := 0 // LCS of a[:i] and b[:j], before row[j] is overwritten
		for j := range b {
			up := row[j+1]
			if a[i] == b[j] {
				row[j+1] = diag + 1
			} else {
				row[j+1] = max(up, row[j])
			}
			diag = up
		}
	}
	return row[len(b)]
}

// newScore computes F1 in the same operation order as rouge-score, so that the values
// agree to the last bit.
func newScore(precision, recall float64) Score {
	f1 := 0.0
	if precision+recall > 0 {
		f1 = 2 * precision * recall / (precision + recall)
	}
	return Score{Precision: precision, Recall: recall, F1: f1}
}
