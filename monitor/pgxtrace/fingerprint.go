package pgxtrace

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fingerprint returns the normalised text of a SQL statement, the name of an
// unnamed query under FallbackFingerprint: comments are dropped; string,
// numeric, bit and dollar-quoted literals and $n parameters become ?; a list
// of them ("?, ?, ?") or of tuples ("(?, ?), (?, ?)") folds to one; unquoted
// words are lower-cased (PostgreSQL folds them too) and quoted identifiers
// kept; whitespace collapses to one space. The result is cut to 200
// characters. Statements that differ only in their literals share a
// fingerprint, so the names stay bounded by the queries the code holds, not
// by the data.
func Fingerprint(sql string) string {
	toks := fold(tokenize(sql))
	var b strings.Builder
	b.Grow(len(sql))
	for i, tok := range toks {
		if i > 0 && needSpace(toks[i-1].text, tok) {
			b.WriteByte(' ')
		}
		b.WriteString(tok.text)
	}
	return truncateName(b.String())
}

type token struct {
	text  string
	glued bool // no whitespace or comment before it in the statement
}

// needSpace decides whether two tokens are written with a space between:
// always, except around punctuation that reads well without one; an opening
// parenthesis keeps the statement's own spacing ("count(*)", "in (...)").
func needSpace(prev string, cur token) bool {
	switch cur.text {
	case ",", ")", ";", ".", "::", "[", "]":
		return false
	case "(":
		return !cur.glued && prev != "("
	}
	switch prev {
	case "(", ".", "::", "[":
		return false
	}
	return true
}

// tokenize splits sql into words, literals (as ?), quoted identifiers and
// punctuation, dropping comments and whitespace.
func tokenize(sql string) []token {
	var toks []token
	glued := false
	add := func(text string) {
		toks = append(toks, token{text: text, glued: glued})
		glued = true
	}
	s := sql
	for len(s) > 0 {
		c := s[0]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			s = s[1:]
			glued = false
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				s = ""
			}
			glued = false
		case strings.HasPrefix(s, "/*"):
			s = skipBlockComment(s)
			glued = false
		case c == '\'':
			s = skipQuoted(s[1:], '\'')
			add("?")
		case (c == 'E' || c == 'e' || c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') && len(s) > 1 && s[1] == '\'':
			s = skipQuoted(s[2:], '\'')
			add("?")
		case c == '"':
			rest := skipQuoted(s[1:], '"')
			add(s[:len(s)-len(rest)])
			s = rest
		case c == '$':
			if n := digits(s[1:]); n > 0 { // $1 parameter
				s = s[1+n:]
				add("?")
			} else if tag, ok := dollarTag(s); ok { // $tag$ ... $tag$
				if i := strings.Index(s[len(tag):], tag); i >= 0 {
					s = s[len(tag)+i+len(tag):]
				} else {
					s = ""
				}
				add("?")
			} else {
				add("$")
				s = s[1:]
			}
		case c >= '0' && c <= '9' || c == '.' && len(s) > 1 && s[1] >= '0' && s[1] <= '9':
			s = s[numberLen(s):]
			add("?")
		case isWordStart(s):
			n := wordLen(s)
			add(strings.ToLower(s[:n]))
			s = s[n:]
		case strings.HasPrefix(s, "::"):
			add("::")
			s = s[2:]
		default:
			_, n := utf8.DecodeRuneInString(s)
			op := n
			// Multi-character operators (<=, <>, ->>, ||, ...) stay whole.
			for op < len(s) && strings.IndexByte("+-*/<>=~!@#%^&|`?", s[op]) >= 0 && strings.IndexByte("+-*/<>=~!@#%^&|`?", c) >= 0 {
				op++
			}
			add(s[:op])
			s = s[op:]
		}
	}
	return toks
}

// fold collapses lists of placeholders: "?, ?, ?" -> "?" and
// "(?), (?)" -> "(?)" (the latter after the former has run).
func fold(toks []token) []token {
	out := toks[:0:0]
	is := func(i int, text string) bool { return out[len(out)-i].text == text }
	for _, tok := range toks {
		n := len(out)
		// "? , ?" -> "?"
		if tok.text == "?" && n >= 2 && is(1, ",") && is(2, "?") {
			out = out[:n-1]
			continue
		}
		out = append(out, tok)
		n = len(out)
		// "( ? ) , ( ? )" -> "( ? )"
		if tok.text == ")" && n >= 7 && is(2, "?") && is(3, "(") && is(4, ",") &&
			is(5, ")") && is(6, "?") && is(7, "(") {
			out = out[:n-4]
		}
	}
	return out
}

func skipBlockComment(s string) string {
	depth := 0
	for i := 0; i < len(s)-1; i++ {
		switch {
		case s[i] == '/' && s[i+1] == '*':
			depth++
			i++
		case s[i] == '*' && s[i+1] == '/':
			depth--
			i++
			if depth == 0 {
				return s[i+1:]
			}
		}
	}
	return ""
}

// skipQuoted returns what follows the closing quote q of a literal whose body
// starts s, with a doubled quote as an escaped one.
func skipQuoted(s string, q byte) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && q == '\'' && i+1 < len(s) {
			// Backslash escapes only matter in E'' strings; skipping the next
			// byte is harmless elsewhere except for a literal ending in \',
			// which standard strings do not allow to end a literal anyway.
			i++
			continue
		}
		if s[i] == q {
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return s[i+1:]
		}
	}
	return ""
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// dollarTag returns the opening "$tag$" of a dollar-quoted string.
func dollarTag(s string) (string, bool) {
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '$' {
			return s[:i+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 1 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return "", false
}

func numberLen(s string) int {
	i := 0
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		i = 2
		for i < len(s) && strings.IndexByte("0123456789abcdefABCDEF_", s[i]) >= 0 {
			i++
		}
		return i
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '_' || s[i] == '.') {
		i++
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if k := digits(s[j:]); k > 0 {
			i = j + k
		}
	}
	return i
}

func isWordStart(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || unicode.IsLetter(r)
}

func wordLen(s string) int {
	for i, r := range s {
		if !(r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return i
		}
	}
	return len(s)
}
