package server

import (
	"fmt"
	"regexp"
)

// maxPathLength bounds a path segment; real paths are short names.
const maxPathLength = 200

// validatePath accepts exactly one URL path segment made of unreserved
// characters, so that a path can never address anything but itself.
func validatePath(p string) error {
	if p == "" {
		return fmt.Errorf("path is empty")
	}
	if len(p) > maxPathLength {
		return fmt.Errorf("path %.40q... is longer than %d bytes", p, maxPathLength)
	}
	if p == "." || p == ".." {
		return fmt.Errorf("path %q is not allowed", p)
	}
	for i := 0; i < len(p); i++ {
		if !isPathByte(p[i]) {
			return fmt.Errorf("path %q contains %q: a path is one URL segment of letters, digits and _ - . ~ :", p, p[i])
		}
	}
	return nil
}

func isPathByte(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	case b == '_', b == '-', b == '.', b == '~', b == ':':
		return true
	}
	return false
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// validateLabels keeps service-discovery labels to valid Prometheus label
// names and sane sizes.
func validateLabels(labels map[string]string) error {
	if len(labels) > 64 {
		return fmt.Errorf("%d labels given; at most 64 are allowed", len(labels))
	}
	for k, v := range labels {
		if !labelNameRE.MatchString(k) {
			return fmt.Errorf("label name %q is not a valid Prometheus label name", k)
		}
		if len(v) > 1024 {
			return fmt.Errorf("label %q has a value longer than 1024 bytes", k)
		}
	}
	return nil
}
