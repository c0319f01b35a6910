package config

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

// maxConfigSize bounds a config file fetched over HTTP.
const maxConfigSize = 4 << 20

// Format is a config file format.
type Format string

// The supported formats. YAML is the primary one; HOCON is the Kotlin
// programs' own, and the choice for files without a known extension since
// it is also a superset of JSON.
const (
	FormatYAML  Format = "YAML"
	FormatTOML  Format = "TOML"
	FormatJSON  Format = "JSON"
	FormatHOCON Format = "HOCON"
)

// formatOf picks a format from a file name, then from a content type.
func formatOf(name, contentType string) (Format, error) {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return FormatYAML, nil
	case ".toml":
		return FormatTOML, nil
	case ".json":
		return FormatJSON, nil
	case ".conf", ".hocon":
		return FormatHOCON, nil
	case ".properties":
		return "", fmt.Errorf("%s: Java .properties files are not supported; use YAML, TOML, JSON or HOCON (.conf)", name)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case strings.Contains(mt, "yaml"):
		return FormatYAML, nil
	case strings.Contains(mt, "toml"):
		return FormatTOML, nil
	case strings.HasSuffix(mt, "json"):
		return FormatJSON, nil
	}
	return FormatHOCON, nil
}

// source is a config file read into memory.
type source struct {
	name   string // what messages call it: "file /etc/x.yaml" or "URL https://..."
	dir    string // directory relative paths are resolved against; "" for URLs
	path   string // local path, for HOCON includes
	data   []byte
	format Format
}

// readSource reads --config: a local path or an http(s) URL.
func readSource(ctx context.Context, location string, client *http.Client) (*source, error) {
	if u, err := url.Parse(location); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return fetch(ctx, u, client)
	}
	abs, err := filepath.Abs(location)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", location, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	f, err := formatOf(abs, "")
	if err != nil {
		return nil, err
	}
	return &source{name: "file " + location, dir: filepath.Dir(abs), path: abs, data: data, format: f}, nil
}

func fetch(ctx context.Context, u *url.URL, client *http.Client) (*source, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	shown := redactURL(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("config URL %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch config URL %s: %v", shown, redactErr(err, u))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot fetch config URL %s: HTTP status %s", shown, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot fetch config URL %s: %v", shown, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config URL %s: larger than %d bytes", shown, maxConfigSize)
	}
	f, err := formatOf(u.Path, resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	return &source{name: "URL " + shown, data: data, format: f}, nil
}

// parse turns the source into a nested map.
func (s *source) parse(env func(string) (string, bool)) (map[string]any, error) {
	var p koanf.Parser
	switch s.format {
	case FormatYAML:
		p = yaml.Parser()
	case FormatTOML:
		p = toml.Parser()
	case FormatJSON:
		p = json.Parser()
	default:
		p = HOCON{Path: s.path, Env: env}
	}
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(s.data), p); err != nil {
		return nil, fmt.Errorf("%s is not valid %s: %v", s.name, s.format, err)
	}
	return k.Raw(), nil
}

// redactURL hides userinfo and query values, which may hold credentials.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("REDACTED")
	}
	if c.RawQuery != "" {
		c.RawQuery = "REDACTED"
	}
	return c.String()
}

// redactErr keeps the URL's secrets out of a client error.
func redactErr(err error, u *url.URL) string {
	return strings.ReplaceAll(err.Error(), u.String(), redactURL(u))
}
