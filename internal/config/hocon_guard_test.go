package config

import (
	"strings"
	"testing"
	"time"
)

// TestHOCONMalformedFailsFast covers inputs on which the HOCON library
// itself never returns: the program must refuse them with a message.
func TestHOCONMalformedFailsFast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "unclosed list with concatenation", in: "a = [1 2", want: `line 1: '[' is never closed`},
		{name: "unclosed list of words", in: "a = [x y", want: `'[' is never closed`},
		{name: "unclosed object", in: "proxy {\n  http.port = 8080\n", want: `line 1: '{' is never closed`},
		{name: "stray closer", in: "a = 1\n}\n", want: `line 2: '}' has no matching opening bracket`},
		{name: "mismatched", in: "a = [1, 2}", want: `'}' has no matching opening bracket`},
		{name: "unclosed string", in: "a = \"abc\n", want: "quoted string is never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := HOCON{}.Unmarshal([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if time.Since(start) > time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
}

func TestHOCONBracketsInsideStringsAndComments(t *testing.T) {
	t.Parallel()
	in := "# a comment with [ and {\n// another ]\na = \"[not a list {\"\nc = ${?HOME}\nd = [1, {e = 2}]\n"
	m, err := HOCON{Env: func(string) (string, bool) { return "", false }}.Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["a"] != "[not a list {" {
		t.Fatalf("got %v", m)
	}
}

func TestCheckBracketsTripleQuotes(t *testing.T) {
	t.Parallel()
	if err := checkBrackets([]byte("a = \"\"\"x [ { y\"\"\"\nb = [1]\n")); err != nil {
		t.Fatalf("brackets inside a triple-quoted string were counted: %v", err)
	}
	if err := checkBrackets([]byte("a = \"\"\"never closed\n")); err == nil {
		t.Fatal("an unclosed triple-quoted string was accepted")
	}
}
