package tokenizer

import (
	"regexp"
	"slices"
	"testing"
	"unicode"
	"unicode/utf8"
)

func split(s string) []string {
	var pieces []string
	for len(s) > 0 {
		n := nextWord(s)
		pieces = append(pieces, s[:n])
		s = s[n:]
	}
	return pieces
}

func TestSplitHandChecked(t *testing.T) {
	// Each expectation is derived by trying the pattern's alternatives in order at
	// each position, as Python's regex module does.
	cases := []struct {
		text string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"Hello  world", []string{"Hello", " ", " world"}},
		{"don't", []string{"don", "'t"}},
		{"DON'T", []string{"DON", "'", "T"}}, // contractions are lower case only
		{"I'm, you're, we'll, it'd've", []string{"I", "'m", ",", " you", "'re", ",", " we", "'ll", ",", " it", "'d", "'ve"}},
		{"He's 'S", []string{"He", "'s", " '", "S"}},
		{"'''s", []string{"'''", "s"}}, // the punctuation run takes the quotes first
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"trailing   ", []string{"trailing", "   "}},
		{"  leading", []string{" ", " leading"}},
		{"x\t\ty", []string{"x", "\t", "\t", "y"}},
		{"x\ty", []string{"x", "\t", "y"}},
		{"3.14 1,000", []string{"3", ".", "14", " 1", ",", "000"}},
		{" !!! ?", []string{" !!!", " ?"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}},
		{"x \u00a0y", []string{"x", " ", "\u00a0", "y"}},
		{"a\u00a0 b", []string{"a", "\u00a0", " b"}},
		// U+0085 is White_Space, so it is \s; U+001C and U+FEFF are not
		{"a \u0085!", []string{"a", " ", "\u0085", "!"}},
		{"a \x1c!", []string{"a", " \x1c!"}},
		{"a\ufeff!", []string{"a", "\ufeff!"}},
		// virama and vowel signs are marks, not letters
		{"नमस्ते", []string{"नमस", "्", "त", "े"}},
		{"👍🏽 👨‍👩‍👧", []string{"👍🏽", " 👨‍👩‍👧"}},
		{"Ⅻ½²3", []string{"Ⅻ½²3"}},
		{"a\xffb", []string{"a", "\xff", "b"}},
		{" ", []string{" "}},
		{"\n", []string{"\n"}},
	}
	for _, c := range cases {
		if got := split(c.text); !slices.Equal(got, c.want) {
			t.Errorf("split(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// whiteSpace lists the White_Space property of Unicode's PropList.txt, which is what
// \s matches in Python's regex module.
const whiteSpace = `\t-\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`

var (
	// The pattern's first six alternatives; Go's regexp prefers the leftmost
	// alternative as a backtracking engine does, but has no lookahead.
	refHead  = regexp.MustCompile(`^(?:'s|'t|'re|'ve|'m|'ll|'d| ?\pL+| ?\pN+| ?[^` + whiteSpace + `\pL\pN]+)`)
	refSpace = regexp.MustCompile(`^[` + whiteSpace + `]+`)
)

// referenceSplit splits s with the regexps above, resolving \s+(?!\S)|\s+ by backing
// off one character at a time as a backtracking engine would.
func referenceSplit(s string) []string {
	var pieces []string
	for len(s) > 0 {
		n := 0
		if loc := refHead.FindStringIndex(s); loc != nil {
			n = loc[1]
		} else if loc := refSpace.FindStringIndex(s); loc != nil {
			run := s[:loc[1]]
			n = len(run) // \s+ when no shorter match is followed by a non-space
			for k := len(run); k > 0; {
				if k == len(s) || refSpace.MatchString(s[k:]) {
					n = k
					break
				}
				_, size := utf8.DecodeLastRuneInString(run[:k])
				k -= size
			}
		} else {
			panic("pattern matches nothing at " + s)
		}
		pieces = append(pieces, s[:n])
		s = s[n:]
	}
	return pieces
}

func TestSplitMatchesReference(t *testing.T) {
	for _, s := range testTexts(400) {
		if got, want := split(s), referenceSplit(s); !slices.Equal(got, want) {
			t.Errorf("split(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestIsSpaceIsWhiteSpace(t *testing.T) {
	re := regexp.MustCompile(`^[` + whiteSpace + `]$`)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if got, want := unicode.IsSpace(r), re.MatchString(string(r)); got != want {
			t.Errorf("%U: unicode.IsSpace %v, White_Space %v", r, got, want)
		}
	}
}
