package webconfig

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Serve serves srv on ln under the web configuration file at path: over
// TLS when the file configures it, behind basic auth when it names users.
// It wraps srv.Handler (http.DefaultServeMux when nil) and, for TLS, sets
// srv.TLSConfig. Like http.Server.Serve, it returns http.ErrServerClosed
// after a shutdown.
func Serve(ln net.Listener, srv *http.Server, path string, log *slog.Logger) error {
	src, err := newSource(path, log, checkEvery)
	if err != nil {
		return fmt.Errorf("web config file %q: %w", path, err)
	}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = newHandler(src, next)
	s := src.cur.Load().s
	if s.tls == nil {
		log.Info("serving HTTP under the web config file", "file", path, "address", ln.Addr().String(), "tls", false, "basic_auth", len(s.users) > 0)
		return srv.Serve(ln)
	}
	protos := []string{"h2", "http/1.1"}
	if !s.http2 {
		protos = protos[1:]
		// An empty map, not nil, is what keeps net/http from adding h2.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	srv.TLSConfig = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return src.get().tls.config(protos), nil
	}}
	log.Info("serving HTTPS under the web config file", "file", path, "address", ln.Addr().String(), "http2", s.http2, "basic_auth", len(s.users) > 0)
	return srv.ServeTLS(ln, "", "")
}

// checkEvery spaces the looks at the file: a stat on every request would be
// a system call on every scrape.
var checkEvery = time.Second

// source is the configuration in force. At most every so often a request
// stats the file, and only a change of its identity, size or time loads it
// again.
type source struct {
	path  string
	log   *slog.Logger
	tlsOn bool
	every time.Duration
	cur   atomic.Pointer[snapshot]
	next  atomic.Int64 // when the file is next looked at, in Unix nanoseconds

	mu      sync.Mutex // serialises the looks and guards statErr
	statErr string
}

type snapshot struct {
	fi os.FileInfo // of the version loaded
	s  *settings
	// refused is the version last refused, so that it is reported once. It
	// is tried again at every look, since what it names (a certificate put
	// in place after the file that points to it) may have been mended.
	refused os.FileInfo
}

func newSource(path string, log *slog.Logger, every time.Duration) (*source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	s, err := load(path, log)
	if err != nil {
		return nil, err
	}
	src := &source{path: path, log: log, tlsOn: s.tls != nil, every: every}
	src.cur.Store(&snapshot{fi: fi, s: s})
	src.next.Store(time.Now().Add(every).UnixNano())
	return src, nil
}

func unchanged(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func (src *source) get() *settings {
	if time.Now().UnixNano() < src.next.Load() {
		return src.cur.Load().s
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	now := time.Now()
	snap := src.cur.Load()
	if now.UnixNano() < src.next.Load() {
		return snap.s // another request looked meanwhile
	}
	src.next.Store(now.Add(src.every).UnixNano())
	fi, err := os.Stat(src.path)
	if err != nil {
		// A deployment replacing the file may leave it missing for a
		// moment; say so once, not at every look.
		if msg := err.Error(); msg != src.statErr {
			src.statErr = msg
			src.log.Warn("cannot read the web config file; keeping the configuration loaded before", "file", src.path, "err", err)
		}
		return snap.s
	}
	src.statErr = ""
	if unchanged(fi, snap.fi) {
		return snap.s
	}
	s, err := load(src.path, src.log)
	if err == nil && (s.tls != nil) != src.tlsOn {
		err = errors.New("turning TLS on or off takes a restart")
	}
	if err != nil {
		if !unchanged(fi, snap.refused) {
			src.log.Error("web config file changed but cannot be used; keeping the configuration loaded before", "file", src.path, "err", err)
		}
		src.cur.Store(&snapshot{fi: snap.fi, s: snap.s, refused: fi})
		return snap.s
	}
	src.cur.Store(&snapshot{fi: fi, s: s})
	src.log.Info("web config file reloaded", "file", src.path)
	return s
}

// decoyHash is checked for a user that does not exist, so that a wrong
// user name takes as long to refuse as a wrong password. Nobody knows its
// password.
var decoyHash = []byte("$2a$10$MVH7Igl6.l7HNI1jixxMqO9lFtCqwnveFXBwxEpDocSQHz2x30riC")

// seenMax bounds each set of remembered answers: a bcrypt check costs tens
// of milliseconds, and Prometheus sends the same credentials on every
// scrape.
const seenMax = 100

type handler struct {
	src  *source
	next http.Handler

	bcryptMu sync.Mutex // one bcrypt at a time: a burst of bad logins must not take every core
	mu       sync.Mutex
	// accepted and refused remember answers under a digest of user, hash
	// and password, never the password itself. They are bounded apart, so
	// that a flood of wrong guesses cannot push Prometheus' credentials out
	// and make its scrapes wait behind the guesses' bcrypt checks.
	accepted, refused map[[sha256.Size]byte]struct{}
}

func newHandler(src *source, next http.Handler) *handler {
	return &handler{src: src, next: next,
		accepted: make(map[[sha256.Size]byte]struct{}), refused: make(map[[sha256.Size]byte]struct{})}
}

// remember adds key to m, first dropping an arbitrary tenth of m when it is
// full (map order is unspecified).
func remember(m map[[sha256.Size]byte]struct{}, key [sha256.Size]byte) {
	if len(m) >= seenMax {
		n := 0
		for k := range m {
			delete(m, k)
			if n++; n >= seenMax/10 {
				break
			}
		}
	}
	m[key] = struct{}{}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.src.get()
	if s.limiter != nil && !s.limiter.Allow() {
		http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
		return
	}
	for k, v := range s.headers {
		w.Header().Set(k, v)
	}
	if len(s.users) > 0 {
		if !h.authorized(s, r) {
			w.Header().Set("WWW-Authenticate", `Basic charset="UTF-8"`)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		// The credential was this listener's and is used up: nothing
		// behind it (the proxy passes a request's Authorization on to the
		// target) may see it.
		r.Header.Del("Authorization")
	}
	h.next.ServeHTTP(w, r)
}

func (h *handler) authorized(s *settings, r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hash, known := s.users[user]
	if !known {
		hash = decoyHash
	}
	// Each part prefixed with its length, so that no two triples share
	// a digest. This runs on every scrape behind basic auth.
	d := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, b := range [][]byte{[]byte(user), hash, []byte(pass)} {
		d.Write(binary.AppendUvarint(n[:0], uint64(len(b))))
		d.Write(b)
	}
	var key [sha256.Size]byte
	d.Sum(key[:0])

	h.mu.Lock()
	_, good := h.accepted[key]
	_, bad := h.refused[key]
	h.mu.Unlock()
	if good || bad {
		return good
	}
	h.bcryptMu.Lock()
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	h.bcryptMu.Unlock()
	good = known && err == nil
	h.mu.Lock()
	if good {
		remember(h.accepted, key)
	} else {
		remember(h.refused, key)
	}
	h.mu.Unlock()
	return good
}
