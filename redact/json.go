package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"
)

// JSONEncoder writes JSON documents the way encoding/json's Encoder does,
// after masking every string of the value with String (see Copy) and with
// the characters encoding/json leaves raw but a terminal may act on (DEL,
// the C1 controls U+0080–U+009F, bidirectional controls) written as \u
// escapes. The document still decodes to the same (masked) values: only the
// bytes on the wire change. Every JSON output of the program goes through
// one.
type JSONEncoder struct {
	w              io.Writer
	prefix, indent string
	noHTML         bool
}

// NewJSONEncoder returns an encoder writing to w. Like encoding/json's, it
// escapes <, > and & unless SetEscapeHTML(false).
func NewJSONEncoder(w io.Writer) *JSONEncoder { return &JSONEncoder{w: w} }

// SetIndent is encoding/json's Encoder.SetIndent.
func (e *JSONEncoder) SetIndent(prefix, indent string) { e.prefix, e.indent = prefix, indent }

// SetEscapeHTML is encoding/json's Encoder.SetEscapeHTML.
func (e *JSONEncoder) SetEscapeHTML(on bool) { e.noHTML = !on }

// Encode writes v, masked, as one JSON document followed by a newline, in a
// single Write.
func (e *JSONEncoder) Encode(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent(e.prefix, e.indent)
	enc.SetEscapeHTML(!e.noHTML)
	if err := enc.Encode(copyAny(v, String)); err != nil {
		return err
	}
	_, err := e.w.Write(JSONSafe(buf.Bytes()))
	return err
}

// JSONSafe rewrites, in encoded JSON, every character that encoding/json
// leaves raw but Escape would escape as a \u escape. Outside strings JSON
// holds only ASCII punctuation, digits, letters and spaces, so every such
// character is inside a string, where the escape means the same character.
// b is returned unchanged when there is none.
func JSONSafe(b []byte) []byte {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			break
		}
		i += size
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				out = append(out, `\u007f`...)
			} else {
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			h := strconv.FormatInt(int64(r), 16)
			out = append(out, `\u`...)
			for n := len(h); n < 4; n++ {
				out = append(out, '0')
			}
			out = append(out, h...)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
