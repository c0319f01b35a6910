package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// MinVersion is the oldest TLS version either side accepts.
const MinVersion = tls.VersionTLS12

// NewServer returns the configuration of a TLS server. CertFile and KeyFile
// are required. With CAFile, every client must present a certificate signed
// by one of its CAs (mutual TLS). nextProtos are the ALPN protocols to
// offer; the agent channel passes only "h2".
//
// The returned configuration reloads the three files as the package doc
// describes. Session resumption is off: agents hold their connection for
// hours, and a resumed session would skip the check of the client
// certificate against the CAs trusted now.
func NewServer(f Files, nextProtos []string, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("a TLS server needs both a certificate file and a key file")
	}
	kp, err := NewKeyPair(f.CertFile, f.KeyFile, log)
	if err != nil {
		return nil, err
	}
	var ca *CAPool
	if f.CAFile != "" {
		if ca, err = NewCAPool(f.CAFile, log); err != nil {
			return nil, err
		}
	}
	build := func() *tls.Config {
		cfg := &tls.Config{
			MinVersion:             MinVersion,
			NextProtos:             slices.Clone(nextProtos),
			Certificates:           []tls.Certificate{*kp.Get()},
			SessionTicketsDisabled: true,
		}
		if ca != nil {
			cfg.ClientCAs = ca.Get()
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return cfg
	}
	base := build()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return build(), nil }
	return base, nil
}

// Client is the TLS material of a client: an optional client certificate
// for mutual TLS and the CAs that may sign the server's certificate.
type Client struct {
	kp     *KeyPair
	ca     *CAPool
	caFile string
}

// NewClient loads a client's files. CertFile and KeyFile are given together
// or not at all; without CAFile the system's CAs are trusted.
func NewClient(f Files, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	}
	c := &Client{caFile: f.CAFile}
	var err error
	if f.CertFile != "" {
		if c.kp, err = NewKeyPair(f.CertFile, f.KeyFile, log); err != nil {
			return nil, err
		}
	}
	if f.CAFile != "" {
		if c.ca, err = NewCAPool(f.CAFile, log); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Config returns a configuration for connecting to a server whose
// certificate must be valid for serverName (a DNS name or an IP address).
//
// The server's certificate is verified here, in VerifyConnection, rather
// than by crypto/tls itself: crypto/tls can only verify against a fixed
// RootCAs pool, and the trust file must be reloadable. InsecureSkipVerify
// only turns off the built-in check; VerifyConnection runs on every
// handshake, resumed or not, and applies the same checks (chain to a
// trusted CA, validity period, server-auth usage, host name), with errors
// that say which of them failed.
func (c *Client) Config(serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         MinVersion,
		NextProtos:         []string{"h2"},
		ServerName:         serverName,
		InsecureSkipVerify: true, //nolint:gosec // verification is done in VerifyConnection, see above
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verify(cs, serverName)
		},
	}
	if c.kp != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.kp.Get(), nil
		}
	}
	return cfg
}

func (c *Client) verify(cs tls.ConnectionState, serverName string) error {
	if serverName == "" {
		// x509 skips the host name check for an empty name; never let
		// that happen silently.
		return errors.New("no server name to verify the server certificate against")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		DNSName:       serverName,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if c.ca != nil {
		opts.Roots = c.ca.Get()
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return c.explain(err, leaf, serverName)
	}
	return nil
}

// explain turns a verification failure into a message that names what is
// wrong and where to look.
func (c *Client) explain(err error, leaf *x509.Certificate, serverName string) error {
	trust := "the system's trusted CAs"
	if c.caFile != "" {
		trust = fmt.Sprintf("trust file %q", c.caFile)
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return &VerifyError{Reason: ReasonUnknownCA, Err: err,
			msg: fmt.Sprintf("server certificate (%s) is not signed by a CA in %s", describe(leaf), trust)}
	case errors.As(err, &host):
		names := slices.Clone(leaf.DNSNames)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		return &VerifyError{Reason: ReasonNameMismatch, Err: err,
			msg: fmt.Sprintf("server certificate is valid for [%s], not for %q: connect with one of those names or override the expected name (authority override)", strings.Join(names, ", "), serverName)}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		now := time.Now()
		if now.Before(leaf.NotBefore) {
			return &VerifyError{Reason: ReasonExpired, Err: err,
				msg: fmt.Sprintf("server certificate (%s) is not valid before %s", describe(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))}
		}
		return &VerifyError{Reason: ReasonExpired, Err: err,
			msg: fmt.Sprintf("server certificate (%s) expired at %s", describe(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))}
	default:
		return &VerifyError{Reason: ReasonOther, Err: err, msg: fmt.Sprintf("server certificate (%s) rejected: %v", describe(leaf), err)}
	}
}

// Reason classifies a rejected server certificate.
type Reason string

// The reasons a server certificate is rejected.
const (
	ReasonUnknownCA    Reason = "unknown_ca"
	ReasonNameMismatch Reason = "name_mismatch"
	ReasonExpired      Reason = "expired"
	ReasonOther        Reason = "other"
)

// VerifyError is a server certificate the client refused.
type VerifyError struct {
	Reason Reason
	Err    error
	msg    string
}

func (e *VerifyError) Error() string { return e.msg }

// Unwrap returns the x509 error behind the refusal.
func (e *VerifyError) Unwrap() error { return e.Err }
