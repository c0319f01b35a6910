//go:build !race

package e2e

// raceEnabled says the test binary, and so the binaries it builds, run
// with the race detector.
const raceEnabled = false
