// Package client is the agent half of Prometheus Proxy, and the library for
// embedding an agent in another Go program.
//
// An Agent runs inside the firewall next to the targets it serves. It dials
// the proxy (never the other way round), registers the paths of its
// configuration, and answers each scrape request by fetching the path's
// target URL and streaming the answer back over the same session. It
// fetches only the URLs in its own configuration: a scrape request names a
// path, never a URL.
//
// Typical embedding:
//
//	opts := client.DefaultOptions()
//	opts.ProxyURLs = []string{"proxy.example.com:50051"}
//	opts.Paths = []client.PathConfig{{Path: "app_metrics", URL: "http://localhost:9100/metrics"}}
//	agent, err := client.New(opts)
//	if err != nil { ... }
//	agent.Start()
//	defer agent.Close()
package client
