package redact

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// String returns s with every known secret masked, in every form the
// registry derives, and every credential the URL rules of Text find. It is
// for text that leaves the program but not to a terminal: files (the
// journal), logs, JSON string values. Text for a terminal goes through
// Terminal or TerminalLines, which also escape control characters.
func String(s string) string {
	return Text(known.Mask(s))
}

// Terminal makes s safe to show as (part of) one line on a terminal: it
// masks like String, then escapes every control character, newlines and
// tabs included (see Escape). Every printer applies it to each string that
// came from outside the program (API answers, plan names and values,
// errors) before adding its own layout and styling.
func Terminal(s string) string {
	return Escape(String(s))
}

// TerminalLines is Terminal for text whose line breaks and tabs are meant:
// it keeps "\n" and "\t" and escapes every other control character.
func TerminalLines(s string) string {
	return EscapeLines(String(s))
}

// Escape replaces every character that a terminal could act on by a
// visible escape: C0 controls (ESC, BEL, CR, BS, ...) and DEL as "\x1b",
// "\x07" and so on ("\n", "\r", "\t" in their short forms); C1 controls
// (U+0080 to U+009F, which some terminals read as CSI, OSC, ...) and the
// bidirectional overrides and isolates that reorder what is shown
// (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) and the line and
// paragraph separators as "\u009b"; bytes that are not UTF-8 as "\x9b".
// Printable text, any script, is kept as is. Escape does not mask secrets.
func Escape(s string) string { return escape(s, false) }

// EscapeLines is Escape keeping "\n" and "\t".
func EscapeLines(s string) string { return escape(s, true) }

// Unsafe reports whether s holds a character Escape would escape (keeping
// "\n" and "\t" when lines is true).
func Unsafe(s string, lines bool) bool { return firstUnsafe(s, lines) >= 0 }

func escape(s string, lines bool) string {
	i := firstUnsafe(s, lines)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if unsafeASCII(c, lines) {
				writeByteEscape(&b, c)
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeByteEscape(&b, c)
		case unsafeRune(r):
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			b.WriteString(strings.Repeat("0", 4-len(h)))
			b.WriteString(h)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe returns the index of the first byte of s that escape changes,
// or -1.
func firstUnsafe(s string, lines bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if unsafeASCII(c, lines) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return i
		}
		i += size
	}
	return -1
}

func unsafeASCII(c byte, lines bool) bool {
	if lines && (c == '\n' || c == '\t') {
		return false
	}
	return c < 0x20 || c == 0x7f
}

// unsafeRune reports whether a non-ASCII rune is one a terminal may act on
// or that changes how the text around it is shown.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidirectional controls
	case r == 0x2028 || r == 0x2029:
		return true
	}
	return false
}

func writeByteEscape(b *strings.Builder, c byte) {
	switch c {
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	default:
		const hex = "0123456789abcdef"
		b.WriteString(`\x`)
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}
