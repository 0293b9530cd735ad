package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// charClass is how GPT-2's split pattern sees a character.
type charClass uint8

const (
	classOther  charClass = iota // [^\s\p{L}\p{N}]
	classLetter                  // \p{L}
	classNumber                  // \p{N}
	classSpace                   // \s, Unicode White_Space in Python's regex module
)

var asciiClass = func() (c [utf8.RuneSelf]charClass) {
	for r := range rune(utf8.RuneSelf) {
		c[r] = classify(r)
	}
	return c
}()

// classify sorts a character into the pattern's classes. unicode.IsSpace is exactly
// the White_Space property, which is what \s means in Python's regex module (unlike
// Python's re, whose \s also takes U+001C-U+001F). The RuneError that stands for an
// invalid byte is classOther, like U+FFFD itself.
func classify(r rune) charClass {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

func classAt(s string) (charClass, int) {
	if s[0] < utf8.RuneSelf {
		return asciiClass[s[0]], 1
	}
	r, n := utf8.DecodeRuneInString(s)
	return classify(r), n
}

// nextWord returns the byte length of the piece GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matches at the start of the non-empty s. The alternatives are tried in order, as a
// backtracking engine does; the classes are disjoint, so the first character (after
// an optional space) decides among the middle three.
func nextWord(s string) int {
	if s[0] == '\'' && len(s) >= 2 {
		switch s[1] {
		case 's', 't', 'm', 'd':
			return 2
		case 'r', 'v':
			if len(s) >= 3 && s[2] == 'e' {
				return 3
			}
		case 'l':
			if len(s) >= 3 && s[2] == 'l' {
				return 3
			}
		}
	}
	class, n := classAt(s)
	if s[0] == ' ' && len(s) > 1 {
		if next, _ := classAt(s[1:]); next != classSpace {
			return 1 + runLength(s[1:], next)
		}
	}
	if class != classSpace {
		return runLength(s, class)
	}
	end := runLength(s, classSpace)
	if end == len(s) || end == n {
		// The run ends the text, so \s+(?!\S) takes all of it; or it is a single
		// character before a non-space, which only \s+ takes.
		return end
	}
	// \s+(?!\S) backs off one character, leaving the last whitespace character of the
	// run to start the next piece (" word" when it is a space).
	_, last := utf8.DecodeLastRuneInString(s[:end])
	return end - last
}

// runLength returns the byte length of the longest prefix of s whose characters are
// all of class c.
func runLength(s string, c charClass) int {
	i := 0
	for i < len(s) {
		ci, n := classAt(s[i:])
		if ci != c {
			break
		}
		i += n
	}
	return i
}
