package redact_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/promproxy/promproxy/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "http://host:9100/metrics", want: "http://host:9100/metrics"},
		{name: "userinfo", in: "https://alice:s3cret@host/metrics", want: "https://REDACTED@host/metrics"},
		{name: "user only", in: "https://alice@host/metrics", want: "https://REDACTED@host/metrics"},
		{name: "query values", in: "http://host/metrics?token=abc&module=if_mib", want: "http://host/metrics?module=REDACTED&token=REDACTED"},
		{name: "fragment", in: "http://host/m#s3cret", want: "http://host/m#REDACTED"},
		{name: "unparsable", in: "http://[::1%zz/x?token=abc", want: "<unparsable URL>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redact.URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
		absent  []string
	}{
		{
			name:   "go client error",
			in:     `Get "http://bob:hunter2@10.0.0.1:9100/metrics?apikey=k1": dial tcp 10.0.0.1:9100: connect: connection refused`,
			want:   `Get "http://REDACTED@10.0.0.1:9100/metrics?apikey=REDACTED": dial tcp 10.0.0.1:9100: connect: connection refused`,
			absent: []string{"hunter2", "k1", "bob"},
		},
		{name: "no URL untouched", in: "connection refused", want: "connection refused"},
		{name: "clean URL untouched", in: "fetching http://h/metrics failed", want: "fetching http://h/metrics failed"},
		{name: "named secret", in: "token tok-123 refused", secrets: []string{"tok-123"}, want: "token REDACTED refused"},
		{name: "empty secret ignored", in: "abc", secrets: []string{""}, want: "abc"},
		{name: "two URLs", in: "a http://u:p@x/ b https://y/?q=1", want: "a http://REDACTED@x/ b https://y/?q=REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := redact.Text(tt.in, tt.secrets...)
			if got != tt.want {
				t.Errorf("Text = %q, want %q", got, tt.want)
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("Text still contains %q: %q", a, got)
				}
			}
		})
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	if got := redact.Error(nil); got != "" {
		t.Errorf("Error(nil) = %q", got)
	}
	err := errors.New(`Get "https://u:pw@h/x?k=v": EOF`)
	if got := redact.Error(err); strings.Contains(got, "pw") || strings.Contains(got, "=v") {
		t.Errorf("Error left a secret: %q", got)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Authorization": {"Bearer abc"},
		"Agent-Token":   {"tok"},
		"Cookie":        {"session=1"},
		"Accept":        {"text/plain"},
		"Referer":       {"http://u:p@h/"},
	}
	got := redact.Header(h)
	for _, k := range []string{"Authorization", "Agent-Token", "Cookie"} {
		if got.Get(k) != redact.Mask {
			t.Errorf("%s = %q, want masked", k, got.Get(k))
		}
	}
	if got.Get("Accept") != "text/plain" {
		t.Errorf("Accept = %q", got.Get("Accept"))
	}
	if strings.Contains(got.Get("Referer"), ":p@") {
		t.Errorf("Referer not redacted: %q", got.Get("Referer"))
	}
	if h.Get("Authorization") != "Bearer abc" {
		t.Error("Header modified its argument")
	}
}

func TestReplaceAttr(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: redact.ReplaceAttr}))
	log.Info("x", "agent_token", "tok-1", "Authorization", "Basic Zm9v", "target", "http://u:pw@h/m?k=v",
		"err", errors.New(`Get "http://u:pw2@h/": EOF`), "path", "app")
	out := b.String()
	for _, secret := range []string{"tok-1", "Zm9v", "pw", "k=v"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line contains %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "path=app") {
		t.Errorf("ordinary attribute lost: %s", out)
	}
}
