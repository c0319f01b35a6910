// Package webconfig serves an HTTP listener under a Prometheus web
// configuration file, the format every Prometheus exporter takes with
// --web.config.file: TLS with optional client certificates,
// basic auth with bcrypt hashes, a few security headers and a request rate
// limit.
//
// The file is checked in full at startup (keys, names, certificates, hashes),
// so a mistake stops the process with an error that names the key at fault.
// While serving, a request looks at the file at most once a second and
// loads it again when it changed; the certificate files follow their files
// through tlsconfig, as on the agent port, so certificates can be renewed
// in place. A change that does not load is logged and ignored: the
// listener keeps the last configuration that did, and never falls back to
// serving without the authentication it had. It is tried again at every
// look, since what it names may be put in place after it.
//
// A request that passed basic auth reaches the handler without its
// Authorization header: the credential was the listener's, and the proxy
// passes a request's Authorization on to the target.
//
// Two settings are fixed when the listener starts, because net/http fixes
// them then: whether it speaks TLS at all, and whether it offers HTTP/2.
package webconfig
