package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// proxyProcess is a prometheus-proxy binary running on loopback.
type proxyProcess struct {
	*process
	scrapeAddr string
	agentAddr  string
	rpc        promproxyv1connect.ProxyServiceClient
}

var listeningRE = regexp.MustCompile(`prometheus-proxy listening: scrape (\S+), agents (\S+)\n`)

// startProxyProcess runs the proxy on ephemeral loopback ports; extra flags
// come last, so they override the defaults (e.g. "--port", "8080").
func startProxyProcess(t testing.TB, extra ...string) *proxyProcess {
	t.Helper()
	args := append([]string{"--listen_host", "127.0.0.1", "--port", "0", "--agent_port", "0"}, extra...)
	p := startProcess(t, "prometheus-proxy", binary(t, "prometheus-proxy"), args...)
	m := p.waitOutput(t, listeningRE, 30*time.Second)
	pp := &proxyProcess{process: p, scrapeAddr: m[1], agentAddr: m[2]}
	pp.rpc = newRPCClient(t, pp.agentAddr)
	return pp
}

// url is the proxy URL Prometheus scrapes for path (which may carry a
// query string).
func (p *proxyProcess) url(path string) string { return "http://" + p.scrapeAddr + "/" + path }

// newRPCClient calls the proxy's unary RPCs over h2c, as an operator's
// tooling would.
func newRPCClient(t testing.TB, agentAddr string) promproxyv1connect.ProxyServiceClient {
	hc := &http.Client{Transport: transport.NewClientTransport(nil, transport.DefaultKeepalive)}
	t.Cleanup(hc.CloseIdleConnections)
	return promproxyv1connect.NewProxyServiceClient(hc, "http://"+agentAddr)
}

// agents returns the proxy's view of its agents, or nil when the proxy
// cannot be reached.
func (p *proxyProcess) agents(ctx context.Context) []*promproxyv1.AgentInfo {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := p.rpc.ListAgents(ctx, &promproxyv1.ListAgentsRequest{})
	if err != nil {
		return nil
	}
	return resp.GetAgents()
}

// waitAgent waits until the agent called name serves n paths on p and
// returns the proxy's record of it.
func (p *proxyProcess) waitAgent(t testing.TB, name string, n int, timeout time.Duration) *promproxyv1.AgentInfo {
	t.Helper()
	var found *promproxyv1.AgentInfo
	waitFor(t, fmt.Sprintf("agent %q to register %d paths", name, n), timeout, func() bool {
		for _, a := range p.agents(t.Context()) {
			if a.GetAgentName() == name && len(a.GetPaths()) == n {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// pathConfig is one entry of the agent's pathConfigs.
type pathConfig struct {
	name, path, url string
}

// startAgentProcess writes an agent config file and runs the agent against
// the given proxies.
func startAgentProcess(t testing.TB, name string, proxies []string, paths []pathConfig, extra ...string) *process {
	t.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "agent:\n  name: %q\n  pathConfigs:\n", name)
	for _, pc := range paths {
		fmt.Fprintf(&y, "    - name: %q\n      path: %q\n      url: %q\n      labels: '{\"team\": \"e2e\"}'\n", pc.name, pc.path, pc.url)
	}
	file := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(file, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--config", file, "--proxy", strings.Join(proxies, ",")}, extra...)
	return startProcess(t, "prometheus-agent "+name, binary(t, "prometheus-agent"), args...)
}

// tunnel is one proxy process and one agent process serving paths.
type tunnel struct {
	proxy *proxyProcess
	agent *process
	info  *promproxyv1.AgentInfo
}

// startTunnel runs a proxy and an agent serving paths, and waits until every
// path is registered.
func startTunnel(t testing.TB, paths []pathConfig, agentFlags ...string) *tunnel {
	t.Helper()
	p := startProxyProcess(t)
	name := "agent-" + strings.ReplaceAll(t.Name(), "/", "-")
	a := startAgentProcess(t, name, []string{p.agentAddr}, paths, agentFlags...)
	info := p.waitAgent(t, name, len(paths), 30*time.Second)
	return &tunnel{proxy: p, agent: a, info: info}
}
