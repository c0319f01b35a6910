// Package backoff computes reconnect delays: capped exponential growth with
// jitter, so that a fleet of agents cut off at the same moment does not
// reconnect in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy describes a capped exponential backoff.
type Policy struct {
	// Initial is the delay before the first retry.
	Initial time.Duration
	// Max caps the delay.
	Max time.Duration
	// Multiplier is the growth factor between attempts; values below 1 are
	// treated as 2.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, in [0, 1].
	// 0.5 spreads a 10 s delay over [5 s, 10 s].
	Jitter float64
}

// Delay returns the delay before retry number attempt (0-based).
func (p Policy) Delay(attempt int) time.Duration {
	m := p.Multiplier
	if m < 1 {
		m = 2
	}
	d := float64(p.Initial)
	for i := 0; i < attempt && d < float64(p.Max); i++ {
		d *= m
	}
	if d > float64(p.Max) {
		d = float64(p.Max)
	}
	j := min(max(p.Jitter, 0), 1)
	d -= d * j * rand.Float64()
	return time.Duration(d)
}
