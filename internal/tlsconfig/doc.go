// Package tlsconfig builds the TLS configurations of the agent channel from
// PEM files, and reloads those files when they change on disk. Its
// KeyPair and CAPool also serve the listeners under a web configuration
// file.
//
// Reloading is driven by handshakes rather than by a watcher goroutine:
// every new handshake reads the files (a few kilobytes), and when their
// bytes differ from the last ones seen it parses them and, if they are
// valid, uses them from then on. Connections already established keep the
// certificate they were set up with, so replacing a certificate never drops
// a connected agent. A replacement that does not parse, does not match its
// key or is expired is logged once and ignored: the previous certificate
// stays in use until a good one appears.
package tlsconfig
