package tokenizer

import "unicode/utf8"

// byteChars[b] is the character GPT-2 writes byte b as in vocab.json and merges.txt.
// Printable Latin-1 bytes ('!'-'~', '¡'-'¬', '®'-'ÿ') stand for themselves; the other
// 68 bytes, in increasing order, take U+0100, U+0101, ... so that no token holds a
// space or control character (a space byte is "Ġ", U+0120; a newline is "Ċ", U+010A).
var byteChars [256]string

// byteOf maps the characters of byteChars back to their bytes.
var byteOf = make(map[rune]byte, 256)

func init() {
	next := rune(0x100)
	for b := range 256 {
		r := rune(b)
		printable := '!' <= r && r <= '~' || '¡' <= r && r <= '¬' || '®' <= r && r <= 'ÿ'
		if !printable {
			r = next
			next++
		}
		byteChars[b] = string(r)
		byteOf[r] = byte(b)
	}
}

// decodeByteLevel returns the bytes a token string stands for, or nil if it holds a
// character outside the byte alphabet.
func decodeByteLevel(tok string) []byte {
	raw := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := byteOf[r]
		if !ok {
			return nil
		}
		raw = append(raw, b)
	}
	return raw
}

// replaceInvalidUTF8 returns b with each maximal invalid subpart replaced by U+FFFD,
// as Python's bytes.decode("utf-8", errors="replace") does. Go's own conversions
// differ: they replace each invalid byte (so a truncated 3-byte sequence gives two
// U+FFFD, not one) or collapse a whole run into one.
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		n, lo, hi := sequenceShape(b[i])
		if n == 0 { // a byte that cannot start a sequence
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		// Accept continuation bytes while they fit; the second byte's range also rules
		// out overlong forms, surrogates and values above U+10FFFF.
		j := i + 1
		for ; j < i+n && j < len(b); j++ {
			if b[j] < lo || b[j] > hi {
				break
			}
			lo, hi = 0x80, 0xBF
		}
		if j == i+n {
			out = append(out, b[i:j]...)
		} else {
			out = utf8.AppendRune(out, utf8.RuneError)
		}
		i = j
	}
	return out
}

// sequenceShape returns the length of the UTF-8 sequence that lead byte c starts and
// the allowed range of its second byte, or n = 0 if c cannot start a sequence.
func sequenceShape(c byte) (n int, lo, hi byte) {
	switch {
	case 0xC2 <= c && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case 0xF1 <= c && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}
