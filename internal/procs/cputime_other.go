//go:build !unix

package procs

import "time"

// cpuTime is not read on this system; the controller stays off.
func cpuTime() (time.Duration, bool) { return 0, false }
