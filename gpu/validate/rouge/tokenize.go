package rouge

import "strings"

// Tokenize splits text the way rouge-score's default tokenizer does: lowercase it, treat
// every run of characters outside [a-z0-9] as a separator, and, with stem, replace each
// token longer than three characters by its Porter stem. Tokens are therefore
// non-empty runs of ASCII lowercase letters and digits.
//
// rouge-score lowercases with Python's str.lower, under which exactly two non-ASCII
// characters produce ASCII letters: the Kelvin sign K (U+212A) becomes "k", and the
// dotted capital İ (U+0130) becomes "i" followed by a combining dot, which then ends
// the token. Both are mirrored here; every other non-ASCII character, and every byte
// of invalid UTF-8, separates tokens.
func Tokenize(text string, stem bool) []string {
	var tokens []string
	var word strings.Builder
	flush := func() {
		if word.Len() == 0 {
			return
		}
		tok := word.String()
		if stem && len(tok) > 3 {
			tok = Stem(tok)
		}
		tokens = append(tokens, tok)
		word.Reset()
	}
	for _, r := range text {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			word.WriteByte(byte(r))
		case 'A' <= r && r <= 'Z':
			word.WriteByte(byte(r - 'A' + 'a'))
		case r == '\u212a':
			word.WriteByte('k')
		case r == '\u0130':
			word.WriteByte('i')
			flush()
		default:
			flush()
		}
	}
	flush()
	return tokens
}
