package client_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/testcerts"
)

func TestNewRefusesBadSecurityOptions(t *testing.T) {
	t.Parallel()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*client.Options)
		want   []string
		secret string
	}{
		{name: "certificate without key", mutate: func(o *client.Options) { o.TLSCertFile = s.ClientCert },
			want: []string{"TLSCertFile/TLSKeyFile", "together"}},
		{name: "config and files", mutate: func(o *client.Options) { o.TLSConfig, o.TLSTrustFile = &tls.Config{}, s.CAFile },
			want: []string{"TLSConfig", "not both"}},
		{name: "http address with TLS", mutate: func(o *client.Options) {
			o.TLSTrustFile, o.ProxyURLs = s.CAFile, []string{"http://proxy:50051"}
		}, want: []string{"ProxyURLs[0]", "https://"}},
		{name: "token with a newline", mutate: func(o *client.Options) { o.AgentToken = "zqx\nzqx" },
			want: []string{"AgentToken", "printable ASCII"}, secret: "zqx"},
		{name: "target config and trust file", mutate: func(o *client.Options) {
			o.TargetTLSConfig, o.TargetTrustFile = &tls.Config{}, s.CAFile
		}, want: []string{"TargetTLSConfig", "not both"}},
		{name: "missing trust file", mutate: func(o *client.Options) { o.TLSTrustFile = s.Dir + "/nope.crt" },
			want: []string{"nope.crt", "does not exist"}},
		{name: "expired client certificate", mutate: func(o *client.Options) {
			o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ExpiredClientCert, s.ExpiredClientKey, s.CAFile
		}, want: []string{s.ExpiredClientCert, "expired at"}},
		{name: "key of another certificate", mutate: func(o *client.Options) {
			o.TLSCertFile, o.TLSKeyFile = s.ClientCert, s.ServerKey
		}, want: []string{"does not belong to certificate file"}},
		{name: "target trust file without certificates", mutate: func(o *client.Options) { o.TargetTrustFile = s.ClientKey },
			want: []string{"TargetTrustFile", "no PEM CERTIFICATE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := client.DefaultOptions()
			tt.mutate(&opts)
			_, err := client.New(opts)
			if err == nil {
				t.Fatal("New accepted the options")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error reveals the token: %q", err)
			}
		})
	}
}
