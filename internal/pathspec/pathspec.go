// Package pathspec is the one definition of what a scrape path is, shared
// by the proxy (which refuses bad registrations), the agent (which refuses
// a bad configuration at startup) and the configuration loader, so that the
// three can never disagree.
package pathspec

import (
	"errors"
	"fmt"
)

// MaxLen bounds a path; real paths are short names.
const MaxLen = 200

// Validate accepts exactly one URL path segment made of unreserved
// characters, so that a path can never address anything but itself.
func Validate(p string) error {
	switch {
	case p == "":
		return errors.New("path is empty")
	case len(p) > MaxLen:
		return fmt.Errorf("path %.40q... is longer than %d bytes", p, MaxLen)
	case p == "." || p == "..":
		return fmt.Errorf("path %q is not allowed", p)
	}
	for i := 0; i < len(p); i++ {
		if !ValidByte(p[i]) {
			return fmt.Errorf("path %q contains %q: a path is one URL segment of letters, digits and _ - . ~ :", p, p[i])
		}
	}
	return nil
}

// ValidByte reports whether b may occur in a path.
func ValidByte(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	case b == '_', b == '-', b == '.', b == '~', b == ':':
		return true
	}
	return false
}

// ValidateGlob accepts a path pattern: path characters and the wildcards *
// and ?.
func ValidateGlob(g string) error {
	if g == "" {
		return errors.New("empty pattern")
	}
	for i := 0; i < len(g); i++ {
		if g[i] != '*' && g[i] != '?' && !ValidByte(g[i]) {
			return fmt.Errorf("pattern %q contains %q, which no path can contain", g, g[i])
		}
	}
	return nil
}
