// Package server is the proxy half of Prometheus Proxy: it runs next to
// Prometheus, accepts the sessions that agents open from behind firewalls,
// and answers each Prometheus scrape of /<path> by forwarding it down the
// session of the agent that registered the path.
//
// A Proxy owns four listeners, each with its own mux so that no route leaks
// from one port to another: the scrape port Prometheus talks to, the agent
// port carrying Connect/gRPC sessions over HTTP/2, and optional admin and
// metrics ports. Create one with New, which validates the Options and binds
// every listener, then call Run.
package server
