// Package archtest holds tests that keep the repository's layering honest:
// which packages may import which, and how generated code is imported.
package archtest
