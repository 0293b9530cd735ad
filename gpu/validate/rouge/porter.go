package rouge

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// This file implements the Porter stemmer (M. F. Porter, "An algorithm for suffix
// stripping", Program 14(3), 1980) in the variant that rouge-score gets from nltk:
// PorterStemmer() with its default mode, NLTK_EXTENSIONS. That variant departs from
// the paper in these places, each marked "nltk:" below:
//
//   - a few irregular forms map straight to a fixed stem (skies → sky, dying → die);
//   - words of one or two characters are returned unchanged;
//   - step 1a: a four-letter word in -ies keeps -ie (ties → tie, where the paper gives
//     ti);
//   - step 1b: -ied becomes -ie in a four-letter word and -i otherwise (died → die,
//     spied → spi), and skips the rest of the step;
//   - step 1c: y → i right after a consonant (happy → happi, spy → spi, enjoy
//     unchanged), where the paper asks for a vowel anywhere before the y (enjoy →
//     enjoi, spy unchanged);
//   - condition *o also holds for a two-letter stem vowel–consonant (owed → owe, ices →
//     ice);
//   - step 2: -bli → -ble instead of -abli → -able; -alli → -al is tried before the
//     other rules and, when it fires, step 2 runs again on the result; -fulli → -ful
//     and -logi → -log are added, the latter keeping the l in the stem when measuring
//     (geology → geolog).

// irregularStems are the forms nltk maps to a fixed stem, bypassing the algorithm.
var irregularStems = map[string]string{
	"sky": "sky", "skies": "sky",
	"dying": "die", "lying": "lie", "tying": "tie",
	"news":   "news",
	"inning": "inning", "innings": "inning",
	"outing": "outing", "outings": "outing",
	"canning": "canning", "cannings": "canning",
	"howe":    "howe",
	"proceed": "proceed", "exceed": "exceed", "succeed": "succeed",
}

// Stem returns the Porter stem of word, as nltk's PorterStemmer().stem(word) does for
// any input: like nltk it looks the word up among the irregular forms, then lowercases
// it as Python does. Tokenize calls it only on lowercase ASCII tokens longer than three
// characters.
func Stem(word string) string {
	if s, ok := irregularStems[word]; ok {
		return s
	}
	// Python lowercases İ to i plus a combining dot, where Go gives a bare i.
	lower := strings.ToLower(strings.ReplaceAll(word, "\u0130", "i\u0307"))
	if utf8.RuneCountInString(word) <= 2 {
		return lower
	}
	// Runes, not bytes: nltk counts and compares characters.
	w := []rune(lower)
	w = step1a(w)
	w = step1b(w)
	w = step1c(w)
	w = step2(w)
	w = step3(w)
	w = step4(w)
	w = step5a(w)
	w = step5b(w)
	return string(w)
}

// isConsonant reports whether w[i] is a consonant: a letter other than a, e, i, o, u,
// and other than a y that follows a consonant. Digits and other characters count as
// consonants. It depends only on w[:i+1], so a stem can be judged inside its word.
func isConsonant(w []rune, i int) bool {
	c := false
	for k := 0; k <= i; k++ {
		c = consonantAfter(w[k], k == 0 || !c)
	}
	return c
}

// measure is m in the paper: writing w as [C](VC){m}[V] with C a run of consonants and
// V a run of vowels, m counts the vowel-to-consonant transitions.
func measure(w []rune) int {
	m := 0
	prevConsonant := false
	for i, r := range w {
		c := consonantAfter(r, i == 0 || !prevConsonant)
		if c && i > 0 && !prevConsonant {
			m++
		}
		prevConsonant = c
	}
	return m
}

func containsVowel(w []rune) bool {
	prevConsonant := false
	for i, r := range w {
		prevConsonant = consonantAfter(r, i == 0 || !prevConsonant)
		if !prevConsonant {
			return true
		}
	}
	return false
}

// consonantAfter reports whether r is a consonant, given whether a y there would be
// one: a y is a consonant at the start of the word or after a vowel.
func consonantAfter(r rune, yConsonant bool) bool {
	switch r {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return yConsonant
	}
	return true
}

// endsDoubleConsonant is condition *d: w ends in two identical consonants.
func endsDoubleConsonant(w []rune) bool {
	n := len(w)
	return n >= 2 && w[n-1] == w[n-2] && isConsonant(w, n-1)
}

// endsCVC is condition *o: w ends consonant–vowel–consonant and the last consonant is
// not w, x or y (hop, wil). nltk: a two-letter vowel–consonant w also qualifies, with
// no exception for w, x or y.
func endsCVC(w []rune) bool {
	n := len(w)
	if n == 2 {
		return !isConsonant(w, 0) && isConsonant(w, 1)
	}
	return n >= 3 && isConsonant(w, n-3) && !isConsonant(w, n-2) && isConsonant(w, n-1) &&
		w[n-1] != 'w' && w[n-1] != 'x' && w[n-1] != 'y'
}

// cutSuffix returns w without suffix, which is ASCII, and whether w ended with it.
func cutSuffix(w []rune, suffix string) ([]rune, bool) {
	n := len(w) - len(suffix)
	if n < 0 {
		return w, false
	}
	for i := range len(suffix) {
		if w[n+i] != rune(suffix[i]) {
			return w, false
		}
	}
	return w[:n], true
}

// withSuffix returns a new slice holding stem followed by suffix.
func withSuffix(stem []rune, suffix string) []rune {
	return slices.Concat(stem, []rune(suffix))
}

// rule replaces suffix by replacement when the stem before it satisfies when.
type rule struct {
	suffix, replacement string
	when                func(stem []rune) bool
}

// applyFirstRule applies the first rule whose suffix w ends with, if its condition
// holds; either way, later rules are not tried.
func applyFirstRule(w []rune, rules []rule) []rune {
	for _, r := range rules {
		stem, ok := cutSuffix(w, r.suffix)
		if !ok {
			continue
		}
		if r.when(stem) {
			return withSuffix(stem, r.replacement)
		}
		return w
	}
	return w
}

func always([]rune) bool          { return true }
func measureAbove0(s []rune) bool { return measure(s) > 0 }
func measureAbove1(s []rune) bool { return measure(s) > 1 }

// step1a removes plural endings: caresses → caress, ponies → poni, cats → cat.
func step1a(w []rune) []rune {
	if stem, ok := cutSuffix(w, "ies"); ok && len(w) == 4 { // nltk: ties → tie
		return withSuffix(stem, "ie")
	}
	return applyFirstRule(w, step1aRules)
}

var step1aRules = []rule{
	{"sses", "ss", always},
	{"ies", "i", always},
	{"ss", "ss", always},
	{"s", "", always},
}

// step1b removes -eed, -ed and -ing: agreed → agree, plastered → plaster, motoring →
// motor; then it tidies the stem so later steps see -ate, -ble, -ize, a single final
// consonant, or a restored e (hopp → hop, fil → file).
func step1b(w []rune) []rune {
	if stem, ok := cutSuffix(w, "ied"); ok { // nltk
		if len(w) == 4 {
			return withSuffix(stem, "ie")
		}
		return withSuffix(stem, "i")
	}
	if stem, ok := cutSuffix(w, "eed"); ok {
		if measure(stem) > 0 {
			return withSuffix(stem, "ee")
		}
		return w
	}
	stem, ok := cutSuffix(w, "ed")
	if !ok || !containsVowel(stem) {
		stem, ok = cutSuffix(w, "ing")
		if !ok || !containsVowel(stem) {
			return w
		}
	}
	for _, s := range []string{"at", "bl", "iz"} {
		if _, ok := cutSuffix(stem, s); ok {
			return withSuffix(stem, "e")
		}
	}
	if endsDoubleConsonant(stem) {
		switch stem[len(stem)-1] {
		case 'l', 's', 'z':
			return stem
		}
		return stem[:len(stem)-1]
	}
	if measure(stem) == 1 && endsCVC(stem) {
		return withSuffix(stem, "e")
	}
	return stem
}

// step1c turns a final y into i: happy → happi. nltk: only right after a consonant,
// and not in a two-letter word (which Stem never reaches).
func step1c(w []rune) []rune {
	stem, ok := cutSuffix(w, "y")
	if ok && len(stem) > 1 && isConsonant(stem, len(stem)-1) {
		return withSuffix(stem, "i")
	}
	return w
}

// step2 maps double suffixes to single ones when the stem has m > 0: relational →
// relate, digitizer → digitize, sensibiliti → sensible.
func step2(w []rune) []rune {
	if stem, ok := cutSuffix(w, "alli"); ok { // nltk: tried first, then step 2 again
		if measure(stem) > 0 {
			return step2(withSuffix(stem, "al"))
		}
		return w
	}
	return applyFirstRule(w, step2Rules)
}

var step2Rules = []rule{
	{"ational", "ate", measureAbove0},
	{"tional", "tion", measureAbove0},
	{"enci", "ence", measureAbove0},
	{"anci", "ance", measureAbove0},
	{"izer", "ize", measureAbove0},
	{"bli", "ble", measureAbove0}, // nltk: the paper has abli → able
	{"entli", "ent", measureAbove0},
	{"eli", "e", measureAbove0},
	{"ousli", "ous", measureAbove0},
	{"ization", "ize", measureAbove0},
	{"ation", "ate", measureAbove0},
	{"ator", "ate", measureAbove0},
	{"alism", "al", measureAbove0},
	{"iveness", "ive", measureAbove0},
	{"fulness", "ful", measureAbove0},
	{"ousness", "ous", measureAbove0},
	{"aliti", "al", measureAbove0},
	{"iviti", "ive", measureAbove0},
	{"biliti", "ble", measureAbove0},
	{"fulli", "ful", measureAbove0}, // nltk
	// nltk: the l stays with the stem when measuring, so geo+logi qualifies.
	{"logi", "log", func(stem []rune) bool { return measure(withSuffix(stem, "l")) > 0 }},
}

// step3 handles -ic-, -ful, -ness and the like when the stem has m > 0: triplicate →
// triplic, hopeful → hope, goodness → good.
func step3(w []rune) []rune { return applyFirstRule(w, step3Rules) }

var step3Rules = []rule{
	{"icate", "ic", measureAbove0},
	{"ative", "", measureAbove0},
	{"alize", "al", measureAbove0},
	{"iciti", "ic", measureAbove0},
	{"ical", "ic", measureAbove0},
	{"ful", "", measureAbove0},
	{"ness", "", measureAbove0},
}

// step4 removes a last suffix when the stem has m > 1: revival → reviv, adoption →
// adopt.
func step4(w []rune) []rune { return applyFirstRule(w, step4Rules) }

var step4Rules = []rule{
	{"al", "", measureAbove1},
	{"ance", "", measureAbove1},
	{"ence", "", measureAbove1},
	{"er", "", measureAbove1},
	{"ic", "", measureAbove1},
	{"able", "", measureAbove1},
	{"ible", "", measureAbove1},
	{"ant", "", measureAbove1},
	{"ement", "", measureAbove1},
	{"ment", "", measureAbove1},
	{"ent", "", measureAbove1},
	{"ion", "", func(stem []rune) bool {
		return measure(stem) > 1 && (stem[len(stem)-1] == 's' || stem[len(stem)-1] == 't')
	}},
	{"ou", "", measureAbove1},
	{"ism", "", measureAbove1},
	{"ate", "", measureAbove1},
	{"iti", "", measureAbove1},
	{"ous", "", measureAbove1},
	{"ive", "", measureAbove1},
	{"ize", "", measureAbove1},
}

// step5a drops a final e when m > 1, or when m = 1 and the stem does not end cvc:
// probate → probat, cease → ceas, rate → rate. Unlike the other steps, both
// conditions are tried for the one suffix.
func step5a(w []rune) []rune {
	stem, ok := cutSuffix(w, "e")
	if !ok {
		return w
	}
	if m := measure(stem); m > 1 || m == 1 && !endsCVC(stem) {
		return stem
	}
	return w
}

// step5b reduces a final ll to l when the word without its last l has m > 1: controll →
// control, roll → roll.
func step5b(w []rune) []rune {
	if _, ok := cutSuffix(w, "ll"); ok && measure(w[:len(w)-1]) > 1 {
		return w[:len(w)-1]
	}
	return w
}
