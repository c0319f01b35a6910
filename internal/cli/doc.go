// Package cli holds the command-line front ends of the two binaries. Each
// Run function takes its arguments, output streams and environment as
// parameters, so tests drive exactly the code the binaries run.
package cli
