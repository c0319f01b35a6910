package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		policy   Policy
		attempt  int
		min, max time.Duration
	}{
		{name: "first", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 0, min: time.Second, max: time.Second},
		{name: "grows", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 3, min: 8 * time.Second, max: 8 * time.Second},
		{name: "capped", policy: Policy{Initial: time.Second, Max: 10 * time.Second}, attempt: 50, min: 10 * time.Second, max: 10 * time.Second},
		{name: "jitter stays in range", policy: Policy{Initial: time.Second, Max: 10 * time.Second, Jitter: 0.5}, attempt: 10, min: 5 * time.Second, max: 10 * time.Second},
		{name: "custom multiplier", policy: Policy{Initial: time.Second, Max: time.Minute, Multiplier: 3}, attempt: 2, min: 9 * time.Second, max: 9 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 100 {
				d := tt.policy.Delay(tt.attempt)
				if d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %v, want in [%v, %v]", tt.attempt, d, tt.min, tt.max)
				}
			}
		})
	}
}
