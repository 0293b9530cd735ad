package rouge

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		text string
		stem bool
		want []string
	}{
		{"", false, nil},
		{" ,.!? \n", false, nil},
		{"Hello, World!", false, []string{"hello", "world"}},
		{"  several   spaces\tand\nlines ", false, []string{"several", "spaces", "and", "lines"}},
		{"don't", false, []string{"don", "t"}},
		{"C3PO's R2-D2", false, []string{"c3po", "s", "r2", "d2"}},
		{"na\u00efve caf\u00e9", false, []string{"na", "ve", "caf"}},          // non-ASCII letters separate
		{"\u212aelvin", false, []string{"kelvin"}},                            // Kelvin sign lowercases to k
		{"\u0130stanbul", false, []string{"i", "stanbul"}},                    // İ lowercases to i + U+0307
		{"ab\xffcd", false, []string{"ab", "cd"}},                             // invalid UTF-8 separates
		{"Running dogs was ties", true, []string{"run", "dog", "was", "tie"}}, // "was" (3 letters) not stemmed
		{"Running dogs was ties", false, []string{"running", "dogs", "was", "ties"}},
	}
	for _, c := range cases {
		if got := Tokenize(c.text, c.stem); !slices.Equal(got, c.want) {
			t.Errorf("Tokenize(%q, %v) = %q, want %q", c.text, c.stem, got, c.want)
		}
	}
}

func TestComputeHandCases(t *testing.T) {
	zero := Score{}
	one := Score{1, 1, 1}
	cases := []struct {
		name                 string
		candidate, reference string
		stem                 bool
		want                 Scores
	}{
		{"identical", "the cat sat on the mat", "the cat sat on the mat", false, Scores{one, one, one}},
		{"disjoint", "alpha beta", "gamma delta", false, Scores{zero, zero, zero}},
		{
			// candidate: the the the cat (4 tokens); reference: the cat sat on the mat (6).
			// R1: "the" matches min(3, 2) = 2 times, "cat" once: 3. P = 3/4, R = 3/6,
			//     F = 2·(3/4)·(1/2)/(5/4) = 3/5.
			// R2: candidate (the the) ×2, (the cat); reference (the cat) (cat sat)
			//     (sat on) (on the) (the mat): overlap 1. P = 1/3, R = 1/5,
			//     F = (2/15)/(8/15) = 1/4.
			// RL: LCS "the cat" (or "the … the"): 2. P = 2/4, R = 2/6,
			//     F = (1/3)/(5/6) = 2/5.
			"clipped repeats", "the the the cat", "the cat sat on the mat", false,
			Scores{Score{3. / 4, 3. / 6, 3. / 5}, Score{1. / 3, 1. / 5, 1. / 4}, Score{2. / 4, 2. / 6, 2. / 5}},
		},
		{
			// candidate a b c d e f; reference a c e b d f. Every unigram matches:
			// R1 = 1. No bigram is shared (ab bc cd de ef vs ac ce eb bd df): R2 = 0.
			// LCS table, reference down, candidate across:
			//       a b c d e f
			//    a  1 1 1 1 1 1
			//    c  1 1 2 2 2 2
			//    e  1 1 2 2 3 3
			//    b  1 2 2 2 3 3
			//    d  1 2 2 3 3 3
			//    f  1 2 2 3 3 4
			// LCS = 4 (a c e f): P = R = F = 4/6.
			"lcs", "a b c d e f", "a c e b d f", false,
			Scores{one, zero, Score{4. / 6, 4. / 6, 4. / 6}},
		},
		// An empty side has no n-grams: P = 0/1 or R = 0/1, so all zero, never NaN.
		{"empty candidate", "", "the cat", false, Scores{zero, zero, zero}},
		{"empty reference", "the cat", "", false, Scores{zero, zero, zero}},
		{"both empty", "", "", false, Scores{zero, zero, zero}},
		{"only punctuation", "?!", "...", true, Scores{zero, zero, zero}},
		// One token each: identical unigrams, but no bigram on either side, so
		// ROUGE-2 is 0/1 = 0 as in rouge-score.
		{"single token", "cat", "Cat.", false, Scores{one, zero, one}},
		{"case and punctuation", "The CAT, sat.", "the cat -- sat", false, Scores{one, one, one}},
		{
			// Stemmed: the cat were run / a cat run. R1 overlap {cat, run} = 2:
			// P = 2/4, R = 2/3, F = (2/3)/(7/6) = 4/7. Bigrams (the cat) (cat were)
			// (were run) vs (a cat) (cat run): none shared. LCS "cat run" = 2, as R1.
			"stemmed", "The cats were running", "a cat runs", true,
			Scores{Score{2. / 4, 2. / 3, 4. / 7}, zero, Score{2. / 4, 2. / 3, 4. / 7}},
		},
		{"unstemmed", "The cats were running", "a cat runs", false, Scores{zero, zero, zero}},
	}
	for _, c := range cases {
		got := Compute(c.candidate, c.reference, c.stem)
		for _, v := range []struct {
			variant   string
			got, want Score
		}{{"R1", got.R1, c.want.R1}, {"R2", got.R2, c.want.R2}, {"RL", got.RL, c.want.RL}} {
			if !closeScore(v.got, v.want) {
				t.Errorf("%s: %s = %+v, want %+v", c.name, v.variant, v.got, v.want)
			}
		}
	}
}

func closeScore(a, b Score) bool {
	const tol = 1e-15
	return math.Abs(a.Precision-b.Precision) <= tol && math.Abs(a.Recall-b.Recall) <= tol &&
		math.Abs(a.F1-b.F1) <= tol
}

// TestLCSLengthBruteForce checks the dynamic programme against trying every
// subsequence of the shorter side.
func TestLCSLengthBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "c"}
	randomTokens := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return s
	}
	for range 300 {
		a, b := randomTokens(rng.IntN(9)), randomTokens(rng.IntN(12))
		want := 0
		for mask := range 1 << len(a) {
			var sub []string
			for i := range a {
				if mask&(1<<i) != 0 {
					sub = append(sub, a[i])
				}
			}
			if len(sub) > want && isSubsequence(sub, b) {
				want = len(sub)
			}
		}
		if got := lcsLength(a, b); got != want {
			t.Fatalf("lcsLength(%q, %q) = %d, want %d", a, b, got, want)
		}
		if got := lcsLength(b, a); got != want {
			t.Fatalf("lcsLength(%q, %q) = %d, want %d", b, a, got, want)
		}
	}
}

func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// TestNgramScoreReference checks the clipped overlap against the definition: the sum
// over distinct n-grams of the smaller count, with n-grams joined into strings.
func TestNgramScoreReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"x", "y", "z", "w"}
	randomTokens := func() []string {
		s := make([]string, rng.IntN(15))
		for i := range s {
			s[i] = words[rng.IntN(len(words))]
		}
		return s
	}
	counts := func(tokens []string, n int) map[string]int {
		m := map[string]int{}
		for i := 0; i+n <= len(tokens); i++ {
			m[strings.Join(tokens[i:i+n], " ")]++
		}
		return m
	}
	for range 500 {
		cand, ref := randomTokens(), randomTokens()
		for n := 1; n <= 2; n++ {
			cc, rc := counts(cand, n), counts(ref, n)
			overlap, nc, nr := 0, 0, 0
			for g, c := range cc {
				overlap += min(c, rc[g])
				nc += c
			}
			for _, c := range rc {
				nr += c
			}
			p := float64(overlap) / float64(max(nc, 1))
			r := float64(overlap) / float64(max(nr, 1))
			want := Score{Precision: p, Recall: r}
			if p+r > 0 {
				want.F1 = 2 * p * r / (p + r)
			}
			if got := ngramScore(cand, ref, n); got != want {
				t.Fatalf("ngramScore(%q, %q, %d) = %+v, want %+v", cand, ref, n, got, want)
			}
		}
	}
}

func FuzzCompute(f *testing.F) {
	f.Add("the cat sat on the mat", "the cat", true)
	f.Add("", "", false)
	f.Add("Running runs ran!", "\u0130\u212a \xff generalizations", true)
	f.Fuzz(func(t *testing.T, candidate, reference string, stem bool) {
		s := Compute(candidate, reference, stem)
		swapped := Compute(reference, candidate, stem)
		for _, v := range []struct {
			name        string
			got, mirror Score
		}{{"R1", s.R1, swapped.R1}, {"R2", s.R2, swapped.R2}, {"RL", s.RL, swapped.RL}} {
			for _, x := range []float64{v.got.Precision, v.got.Recall, v.got.F1} {
				if !(x >= 0 && x <= 1) {
					t.Fatalf("%s = %+v: out of [0, 1]", v.name, v.got)
				}
			}
			// Swapping the texts swaps precision and recall and keeps F1, exactly.
			if v.got.F1 != v.mirror.F1 || v.got.Precision != v.mirror.Recall || v.got.Recall != v.mirror.Precision {
				t.Fatalf("%s not symmetric: %+v vs swapped %+v", v.name, v.got, v.mirror)
			}
		}
		for _, tok := range Tokenize(candidate, stem) {
			if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
				t.Fatalf("bad token %q", tok)
			}
		}
	})
}

// BenchmarkCompute scores a 60-word candidate against a 50-word reference, stemmed.
func BenchmarkCompute(b *testing.B) {
	cand := strings.Repeat("The committee approved the new budget on Tuesday, after months of debate. ", 5)
	ref := strings.Repeat("After lengthy debates, the committee passed its budget on Tuesday. ", 5)
	for b.Loop() {
		Compute(cand, ref, true)
	}
}
