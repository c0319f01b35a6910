// Package redact removes secrets from text before it reaches a log line or
// an error message: passwords and user names in URLs, URL query values,
// credentials in HTTP headers, and any secret the caller names (agent
// tokens). It is the project's only redaction helper, so that every log and
// error that may carry such a value goes through the same rules.
package redact

import (
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every redacted value.
const Mask = "REDACTED"

// URL returns raw with its userinfo and every query value replaced by Mask.
// Scheme, host, path and query keys are kept, so the result still says
// which target was meant. Text that does not parse as a URL is replaced as
// a whole: it cannot be shown safely.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return redactParsed(u)
}

func redactParsed(u *url.URL) string {
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = Mask
		} else {
			for k := range q {
				q[k] = []string{Mask}
			}
			u.RawQuery = q.Encode()
		}
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	return u.String()
}

// urlInText finds URLs inside free text such as a Go error message
// (`Get "http://u:p@host/x?y=z": dial tcp ...`). It stops at whitespace
// and quotes, which is where Go's own messages end a URL.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// Text returns s with every URL in it redacted as URL does and every
// non-empty secret replaced by Mask. Secrets are replaced first, so a
// token that also appears inside a URL is gone either way.
func Text(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		u, err := url.Parse(m)
		if err != nil {
			return "<unparsable URL>"
		}
		if u.User == nil && u.RawQuery == "" && u.Fragment == "" {
			return m
		}
		return redactParsed(u)
	})
}

// Error returns err's message redacted as Text does. It returns "" for a
// nil error.
func Error(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	return Text(err.Error(), secrets...)
}

// sensitiveHeaders are the request and response headers whose values are
// credentials. Keys are in canonical form.
var sensitiveHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
	"Agent-Token":         true,
	"X-Api-Key":           true,
	"X-Auth-Token":        true,
}

// IsSensitiveHeader reports whether the header named name carries a
// credential.
func IsSensitiveHeader(name string) bool {
	return sensitiveHeaders[http.CanonicalHeaderKey(name)]
}

// Header returns a copy of h, safe to log: credential headers are masked
// and URL-bearing values are redacted.
func Header(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		cp := make([]string, len(vs))
		for i, v := range vs {
			if IsSensitiveHeader(k) {
				cp[i] = Mask
			} else {
				cp[i] = Text(v)
			}
		}
		out[k] = cp
	}
	return out
}

// sensitiveKeys are slog attribute keys whose values are always masked.
var sensitiveKeys = map[string]bool{
	"token":         true,
	"agent_token":   true,
	"password":      true,
	"authorization": true,
	"secret":        true,
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks attributes
// named like a secret (token, agent_token, password, authorization,
// secret) and redacts URLs inside string and error values. It is a second
// line of defence for the program's log handler; code still must not log
// secrets in the first place.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if sensitiveKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, Mask)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "://") {
			return slog.String(a.Key, Text(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); strings.Contains(s, "://") {
				return slog.String(a.Key, Text(s))
			}
		}
	}
	return a
}
