package client

import "testing"

func TestMergeQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, configured, proxy, want string
	}{
		{name: "nothing from the proxy", configured: "module=node", want: "module=node"},
		{name: "nothing configured", proxy: "match[]=up", want: "match[]=up"},
		{name: "federate", configured: "a=1", proxy: "match%5B%5D=%7Bjob%3D%22x%22%7D", want: "a=1&match%5B%5D=%7Bjob%3D%22x%22%7D"},
		{name: "configured key kept", configured: "target=10.0.0.1&module=icmp", proxy: "target=evil&x=1", want: "target=10.0.0.1&module=icmp&x=1"},
		{name: "encoded key", configured: "target=a", proxy: "t%61rget=evil", want: "target=a"},
		{name: "key without value", configured: "debug", proxy: "debug=1&y", want: "debug&y"},
		{name: "empty parts dropped", configured: "a=1", proxy: "&&b=2&", want: "a=1&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mergeQuery(tt.configured, tt.proxy); got != tt.want {
				t.Errorf("mergeQuery(%q, %q) = %q, want %q", tt.configured, tt.proxy, got, tt.want)
			}
		})
	}
}
