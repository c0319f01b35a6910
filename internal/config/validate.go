package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/promproxy/promproxy/internal/pathspec"
)

// LogLevels are the accepted log levels, most detailed first.
var LogLevels = []string{"trace", "debug", "info", "warn", "error", "off"}

// checker collects validation problems, each naming the key, its value,
// what is allowed and where the value came from.
type checker struct {
	s        *Schema
	sources  map[string]string
	section  any
	problems []string
}

func (c *checker) source(key string) string {
	if src, ok := c.sources[key]; ok {
		return src
	}
	// A key inside a list element comes from wherever the list came from.
	if i := strings.Index(key, "["); i > 0 {
		if src, ok := c.sources[key[:i]]; ok {
			return src
		}
	}
	return "default"
}

// badf records a problem with key, whose value is v.
func (c *checker) badf(key string, v any, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("%s = %s: %s (%s)", key, showValue(v, c.s.isSecret(key)), fmt.Sprintf(format, args...), c.source(key)))
}

// tags applies each field's check tag.
func (c *checker) tags() {
	for i := range c.s.Fields {
		f := &c.s.Fields[i]
		if f.Check == "" {
			continue
		}
		v := f.Value(c.section)
		switch v.Kind() {
		case reflect.Int:
			c.checkInt(f, int(v.Int()))
		case reflect.String:
			c.checkString(f, v.String())
		}
	}
}

func (c *checker) checkInt(f *Field, n int) {
	check, arg, _ := strings.Cut(f.Check, "=")
	switch check {
	case "port":
		if n < 1 || n > 65535 {
			c.badf(f.Key, n, "must be a port between 1 and 65535")
		}
	case "listenport":
		if n < 0 || n > 65535 {
			c.badf(f.Key, n, "must be a port between 1 and 65535, or 0 for any free port")
		}
	case "positive":
		if n <= 0 {
			c.badf(f.Key, n, "must be greater than 0")
		}
	case "nonneg":
		if n < 0 {
			c.badf(f.Key, n, "must not be negative")
		}
	case "positive_or_unset":
		if n <= 0 && n != -1 {
			c.badf(f.Key, n, "must be greater than 0, or -1 for the default")
		}
	case "range":
		lo, hi, _ := strings.Cut(arg, "..")
		l, _ := strconv.Atoi(lo)
		h, _ := strconv.Atoi(hi)
		if n < l || n > h {
			c.badf(f.Key, n, "must be between %d and %d", l, h)
		}
	default:
		panic("config: unknown check " + f.Check + " on " + f.Key)
	}
}

func (c *checker) checkString(f *Field, s string) {
	check, arg, _ := strings.Cut(f.Check, "=")
	switch check {
	case "loglevel":
		switch l := strings.ToLower(s); {
		case l == "all":
			c.badf(f.Key, s, `"all" is not supported: use "trace" for the most detail`)
		case l != "" && !contains(LogLevels, l):
			c.badf(f.Key, s, "must be one of %s", strings.Join(LogLevels, ", "))
		}
	case "oneof":
		if !contains(strings.Split(arg, "|"), s) {
			c.badf(f.Key, s, "must be one of %s", strings.Join(strings.Split(arg, "|"), ", "))
		}
	case "segment":
		if pathspec.Validate(strings.TrimPrefix(s, "/")) != nil {
			c.badf(f.Key, s, "must be a single URL path segment of letters, digits and _ - . ~ :")
		}
	case "httpurl":
		if !isHTTPURL(s) {
			c.badf(f.Key, s, "must be an absolute http:// or https:// URL")
		}
	case "proxylist":
		if _, err := ProxyAddresses(s, 50051); err != nil {
			c.badf(f.Key, s, "%v", err)
		}
	case "token":
		if msg := checkToken(s); msg != "" {
			c.badf(f.Key, s, "%s", msg)
		}
	default:
		panic("config: unknown check " + f.Check + " on " + f.Key)
	}
}

// ProxyAddresses splits agent.proxy.hostname into the proxies to try in
// order, adding defaultPort to those without a port.
func ProxyAddresses(hostnames string, defaultPort int) ([]string, error) {
	var out []string
	for _, h := range strings.Split(hostnames, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("must list one or more proxies as host, host:port or https://host:port, separated by commas")
		}
		raw := h
		if !strings.Contains(h, "://") {
			raw = "http://" + h
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("%q is not host, host:port or https://host:port", h)
		}
		if u.Port() == "" {
			u.Host += ":" + strconv.Itoa(defaultPort)
		}
		if strings.Contains(h, "://") {
			out = append(out, u.Scheme+"://"+u.Host)
		} else {
			out = append(out, u.Host)
		}
	}
	return out, nil
}

// checkToken says why a token cannot travel in an HTTP header unchanged,
// or returns "". Both programs would refuse such a token at startup; here
// the message names the key it came from.
func checkToken(t string) string {
	if strings.TrimSpace(t) != t {
		return "a token must not start or end with white space"
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return "a token must be printable ASCII, to travel in an HTTP header"
		}
	}
	return ""
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// distinctPorts reports listeners that would bind the same port.
func (c *checker) distinctPorts(ports [][2]any) {
	seen := map[int]string{}
	for _, p := range ports {
		key, port := p[0].(string), p[1].(int)
		if port == 0 {
			continue // each 0 gets its own free port
		}
		if other, dup := seen[port]; dup {
			c.badf(key, port, "%s already uses this port", other)
			continue
		}
		seen[port] = key
	}
}
