package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// proxy owns streams and connections, and a leak there grows with every
// agent that comes and goes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
