package client

import (
	"net/url"
	"strings"
)

// mergeQuery appends the query Prometheus sent through the proxy to the
// target's configured query. Parameters the configured URL already sets
// are left out of the proxy's part: for multi-target exporters they choose
// what gets probed (?target=, ?module=), and a proxy must never be able to
// change that. Everything else, such as /federate's match[], passes
// through unchanged.
func mergeQuery(configured, fromProxy string) string {
	if fromProxy == "" {
		return configured
	}
	if configured == "" {
		return fromProxy
	}
	fixed := map[string]bool{}
	for _, part := range strings.Split(configured, "&") {
		fixed[queryKey(part)] = true
	}
	kept := make([]string, 0, strings.Count(fromProxy, "&")+1)
	for _, part := range strings.Split(fromProxy, "&") {
		if part != "" && !fixed[queryKey(part)] {
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		return configured
	}
	return configured + "&" + strings.Join(kept, "&")
}

// queryKey is the decoded name of one key=value part of a query.
func queryKey(part string) string {
	k, _, _ := strings.Cut(part, "=")
	if dk, err := url.QueryUnescape(k); err == nil {
		return dk
	}
	return k
}
