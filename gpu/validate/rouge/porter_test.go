package rouge

import "testing"

// The examples of each step in Porter's paper, run through the whole stemmer. All but
// one end where the paper's step ends or are reduced further by later steps exactly as
// the paper's rules say (relational → relate in step 2 → relat in step 5a).
func TestStemPaperExamples(t *testing.T) {
	cases := []struct{ word, want string }{
		// Step 1a.
		{"caresses", "caress"}, {"ponies", "poni"}, {"caress", "caress"}, {"cats", "cat"},
		// The paper gives ties → ti; nltk's default mode keeps -ie on a four-letter
		// -ies word, and rouge-score uses that mode.
		{"ties", "tie"},
		// Step 1b.
		{"feed", "feed"}, {"agreed", "agre"}, {"plastered", "plaster"}, {"bled", "bled"},
		{"motoring", "motor"}, {"sing", "sing"},
		{"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"},
		{"hopping", "hop"}, {"tanned", "tan"}, {"falling", "fall"}, {"hissing", "hiss"},
		{"fizzed", "fizz"}, {"failing", "fail"}, {"filing", "file"},
		// Step 1c.
		{"happy", "happi"}, {"sky", "sky"},
		// Step 2.
		{"relational", "relat"}, {"conditional", "condit"}, {"rational", "ration"},
		{"valenci", "valenc"}, {"digitizer", "digit"}, {"conformabli", "conform"},
		{"radicalli", "radic"}, {"differentli", "differ"}, {"vileli", "vile"},
		{"analogousli", "analog"}, {"vietnamization", "vietnam"}, {"predication", "predic"},
		{"operator", "oper"}, {"feudalism", "feudal"}, {"decisiveness", "decis"},
		{"hopefulness", "hope"}, {"callousness", "callous"}, {"formaliti", "formal"},
		{"sensitiviti", "sensit"}, {"sensibiliti", "sensibl"},
		// Step 3.
		{"triplicate", "triplic"}, {"formative", "form"}, {"formalize", "formal"},
		{"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"},
		{"goodness", "good"},
		// Step 4.
		{"revival", "reviv"}, {"allowance", "allow"}, {"inference", "infer"},
		{"airliner", "airlin"}, {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"},
		{"defensible", "defens"}, {"irritant", "irrit"}, {"replacement", "replac"},
		{"adjustment", "adjust"}, {"dependent", "depend"}, {"adoption", "adopt"},
		{"homologou", "homolog"}, {"communism", "commun"}, {"activate", "activ"},
		{"angulariti", "angular"}, {"homologous", "homolog"}, {"effective", "effect"},
		{"bowdlerize", "bowdler"},
		// Step 5.
		{"probate", "probat"}, {"rate", "rate"}, {"cease", "ceas"},
		{"controll", "control"}, {"roll", "roll"},
	}
	for _, c := range cases {
		if got := Stem(c.word); got != c.want {
			t.Errorf("Stem(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

// Words on which nltk's default mode (the one rouge-score uses) departs from the
// paper's algorithm; the paper's result is in the comment.
func TestStemNLTKExtensions(t *testing.T) {
	cases := []struct{ word, want string }{
		{"skies", "sky"},        // irregular form; paper: ski
		{"dying", "die"},        // irregular form; paper: dy
		{"news", "news"},        // irregular form; paper: new
		{"proceed", "proceed"},  // irregular form; paper: proce
		{"dies", "die"},         // four-letter -ies; paper: di
		{"died", "die"},         // four-letter -ied; paper: di
		{"spied", "spi"},        // longer -ied → -i, as in the paper
		{"enjoy", "enjoy"},      // y after a vowel stays; paper: enjoi
		{"toy", "toy"},          // paper: toi
		{"owed", "owe"},         // *o holds for "ow"; paper: ow
		{"ices", "ice"},         // *o holds for "ic"; paper: ic
		{"geology", "geolog"},   // -logi → -log measured with the l; paper: geologi
		{"hopefully", "hope"},   // -fulli → -ful; paper: hopefulli
		{"possibly", "possibl"}, // -bli → -ble; paper (-abli only): possibli
		{"radically", "radic"},  // -alli tried first, then step 2 again
		{"ab", "ab"},            // two letters: unchanged
		{"as", "as"},            // two letters: unchanged; paper: a
		{"yyyy", "yyyi"},        // y, y, y, y is consonant, vowel, consonant, vowel
		{"syzygy", "syzygi"},
		{"Running", "run"},          // lowercased first
		{"caf\u00e9s", "caf\u00e9"}, // non-ASCII letters count as consonants
	}
	for _, c := range cases {
		if got := Stem(c.word); got != c.want {
			t.Errorf("Stem(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	// The paper's examples of m.
	for m, words := range [][]string{
		{"tr", "ee", "tree", "y", "by"},
		{"trouble", "oats", "trees", "ivy"},
		{"troubles", "private", "oaten", "orrery"},
	} {
		for _, w := range words {
			if got := measure([]rune(w)); got != m {
				t.Errorf("measure(%q) = %d, want %d", w, got, m)
			}
		}
	}
}

func FuzzStem(f *testing.F) {
	for _, s := range []string{"", "a", "yyyyyy", "generalizations", "\u0130\u0130", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, word string) {
		Stem(word) // must not panic
	})
}
