package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A proxy that requires a client certificate may close the connection
// before the first request is sent, and net/http then says only that the
// connection could not be established: the hint must still name the cause,
// and only when the proxy did ask for a certificate.
func TestConnectHintForAMissingClientCertificate(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("unavailable: %w", errors.New("http2: client conn could not be established"))
	if got := describeConnectError(err, true, true); !strings.Contains(got, "requires a client certificate") {
		t.Errorf("after the proxy asked for a certificate: %q", got)
	}
	if got := describeConnectError(err, true, false); strings.Contains(got, "client certificate") {
		t.Errorf("when no certificate was asked for: %q", got)
	}
}
