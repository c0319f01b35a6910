package server

import (
	"fmt"
	"regexp"

	"github.com/promproxy/promproxy/internal/pathspec"
)

// validatePath is the shared path rule; see internal/pathspec.
func validatePath(p string) error { return pathspec.Validate(p) }

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
