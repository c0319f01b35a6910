package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Files names the PEM files of one side of a connection.
type Files struct {
	// CertFile is the certificate chain, leaf first.
	CertFile string
	// KeyFile is the private key of the leaf certificate (PKCS#8, PKCS#1
	// or SEC 1).
	KeyFile string
	// CAFile holds the certificates of the CAs trusted to sign the peer's
	// certificate.
	CAFile string
}

// describe names a certificate for messages: its subject and issuer.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q issued by %q", c.Subject.String(), c.Issuer.String())
}

// loadKeyPair reads and checks a certificate and its key, naming the file
// at fault in every error.
func loadKeyPair(certFile, keyFile string, certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	if !hasBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, fmt.Errorf("certificate file %q holds no PEM CERTIFICATE block", certFile)
	}
	if !hasBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, fmt.Errorf("key file %q holds no PEM PRIVATE KEY block", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("key file %q does not belong to certificate file %q: the private key does not match the certificate's public key", keyFile, certFile)
		}
		return nil, fmt.Errorf("certificate file %q with key file %q: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate file %q: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate file %q (%s) expired at %s", certFile, describe(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate file %q (%s) is not valid before %s", certFile, describe(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// LoadPool parses every PEM certificate of trusted CAs; caFile says where
// they came from. Data without a single certificate is an error.
func LoadPool(caFile string, data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trust file %q: certificate %d: %w", caFile, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("trust file %q holds no PEM CERTIFICATE block (a Java keystore or PKCS#12 file must first be converted to PEM)", caFile)
	}
	return pool, nil
}

func hasBlock(data []byte, match func(string) bool) bool {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if match(b.Type) {
			return true
		}
	}
}

// readFile reads path, saying which kind of file could not be read.
func readFile(kind, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s file %q does not exist", kind, path)
		}
		return nil, fmt.Errorf("read %s file %q: %w", kind, path, err)
	}
	return b, nil
}

// KeyPair is a certificate and key that follow their files, as the package
// doc describes. The agent port uses them, and so do the listeners under a
// web configuration file.
type KeyPair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu          sync.Mutex
	seenCert    []byte
	seenKey     []byte
	lastReadErr string
	cur         *tls.Certificate
	warnedExp   bool
}

// NewKeyPair loads the pair now, so that a bad one fails at startup.
func NewKeyPair(certFile, keyFile string, log *slog.Logger) (*KeyPair, error) {
	certPEM, err := readFile("certificate", certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile("key", keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile, certPEM, keyPEM, time.Now())
	if err != nil {
		return nil, err
	}
	return &KeyPair{certFile: certFile, keyFile: keyFile, log: log, seenCert: certPEM, seenKey: keyPEM, cur: cert}, nil
}

// Get returns the current certificate, first picking up a valid
// replacement of the files if there is one.
func (k *KeyPair) Get() *tls.Certificate {
	certPEM, cerr := readFile("certificate", k.certFile)
	keyPEM, kerr := readFile("key", k.keyFile)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := errors.Join(cerr, kerr); err != nil {
		// A deployment swapping the files may leave them missing for a
		// moment; say so once, not on every handshake.
		if msg := err.Error(); msg != k.lastReadErr {
			k.lastReadErr = msg
			k.log.Warn("cannot read certificate files; still using the certificate loaded before", "err", err)
		}
		return k.cur
	}
	k.lastReadErr = ""
	if !bytes.Equal(certPEM, k.seenCert) || !bytes.Equal(keyPEM, k.seenKey) {
		k.seenCert, k.seenKey = certPEM, keyPEM
		cert, err := loadKeyPair(k.certFile, k.keyFile, certPEM, keyPEM, time.Now())
		if err != nil {
			k.log.Error("certificate files changed but cannot be used; still using the certificate loaded before", "err", err)
		} else {
			k.cur, k.warnedExp = cert, false
			k.log.Info("certificate reloaded", "cert_file", k.certFile, "subject", cert.Leaf.Subject.String(),
				"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if !k.warnedExp && time.Now().After(k.cur.Leaf.NotAfter) {
		k.warnedExp = true
		k.log.Error("certificate in use has expired; peers will refuse it until the file is replaced",
			"cert_file", k.certFile, "not_after", k.cur.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return k.cur
}

// CAPool is a set of trusted CAs that follows its file.
type CAPool struct {
	file string
	log  *slog.Logger

	mu          sync.Mutex
	seen        []byte
	lastReadErr string
	cur         *x509.CertPool
}

// NewCAPool loads the CAs now, so that a bad file fails at startup.
func NewCAPool(file string, log *slog.Logger) (*CAPool, error) {
	data, err := readFile("trust", file)
	if err != nil {
		return nil, err
	}
	pool, err := LoadPool(file, data)
	if err != nil {
		return nil, err
	}
	return &CAPool{file: file, log: log, seen: data, cur: pool}, nil
}

// Get returns the current CAs, first picking up a valid replacement of the
// file if there is one.
func (c *CAPool) Get() *x509.CertPool {
	data, err := readFile("trust", c.file)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != c.lastReadErr {
			c.lastReadErr = msg
			c.log.Warn("cannot read trust file; still using the CAs loaded before", "err", err)
		}
		return c.cur
	}
	c.lastReadErr = ""
	if !bytes.Equal(data, c.seen) {
		c.seen = data
		pool, err := LoadPool(c.file, data)
		if err != nil {
			c.log.Error("trust file changed but cannot be used; still using the CAs loaded before", "err", err)
		} else {
			c.cur = pool
			c.log.Info("trust file reloaded", "trust_file", c.file)
		}
	}
	return c.cur
}

// SystemPoolWith returns the system's trusted CAs plus those in caFile,
// for verifying HTTPS scrape targets. An empty caFile gives the system pool
// alone.
func SystemPoolWith(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	data, err := readFile("trust", caFile)
	if err != nil {
		return nil, err
	}
	if _, err := LoadPool(caFile, data); err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(data)
	return pool, nil
}

// LoadKeyPair parses a PEM certificate chain and its key, as read from the
// files (or configuration keys) the names describe, and refuses a pair that
// does not match or is outside its validity period.
func LoadKeyPair(certName, keyName string, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	return loadKeyPair(certName, keyName, certPEM, keyPEM, time.Now())
}
