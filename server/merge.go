package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// openMetricsEOF ends an OpenMetrics exposition; a merged body keeps one.
var openMetricsEOF = []byte("# EOF\n")

// mergeScrape scrapes every agent of a consolidated path at once and
// answers with their bodies joined. Bodies are collected whole (bounded by
// MaxUnzippedContentSize in total) because the answer's status depends on
// all of them: if any agent fails, the scrape fails, so Prometheus never
// takes a partial merge for the whole.
func (p *Proxy) mergeScrape(ctx context.Context, w http.ResponseWriter, r *http.Request, path string, owners []*agentConn, timeout time.Duration) result {
	type part struct {
		body        []byte
		contentType string
		res         result
	}
	parts := make([]part, len(owners))
	var wg sync.WaitGroup
	for i, c := range owners {
		wg.Go(func() {
			body, ct, res := p.collect(ctx, r, c, path, timeout)
			parts[i] = part{body, ct, res}
		})
	}
	wg.Wait()
	var out bytes.Buffer
	contentType := ""
	for i, pt := range parts {
		if pt.res.outcome != outcomeSuccess {
			writeFailure(w, pt.res)
			pt.res.written = true
			return pt.res
		}
		if contentType == "" {
			contentType = pt.contentType
		}
		body := pt.body
		if i < len(parts)-1 {
			body = bytes.TrimSuffix(body, openMetricsEOF)
		}
		if len(body) > 0 && body[len(body)-1] != '\n' && i < len(parts)-1 {
			out.Write(body)
			out.WriteByte('\n')
			continue
		}
		out.Write(body)
	}
	if int64(out.Len()) > p.opts.MaxUnzippedContentSize {
		res := result{outcome: outcomePayloadTooLarge, status: http.StatusRequestEntityTooLarge, reason: "merged body exceeds maxUnzippedContentSizeMBytes"}
		writeFailure(w, res)
		res.written = true
		return res
	}
	h := w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	} else {
		h["Content-Type"] = nil
	}
	h.Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusOK)
	n, err := w.Write(out.Bytes())
	res := result{outcome: outcomeSuccess, status: http.StatusOK, bytes: int64(n), written: true, agent: "*"}
	if err != nil {
		res.outcome, res.abort = outcomeClientCancelled, true
	}
	return res
}

// collect fetches one agent's whole body, decompressed.
func (p *Proxy) collect(ctx context.Context, r *http.Request, c *agentConn, path string, timeout time.Duration) ([]byte, string, result) {
	p.metrics.inFlight.Inc()
	defer p.metrics.inFlight.Dec()
	x, res := p.start(ctx, r, c, path, timeout)
	if x == nil {
		return nil, "", res
	}
	defer x.finish()
	hdr := x.first.GetHeader()
	if s := hdr.GetStatusCode(); s < 200 || s > 299 {
		return nil, "", result{agent: c.name, outcome: outcomeUpstreamError, status: int(s),
			reason: "agent " + strconv.Quote(c.name) + ": target answered with status " + strconv.Itoa(int(s))}
	}
	body := newBodyStream(x.first, hdr.GetContentLength(), p.opts.MaxUnzippedContentSize, x.nextFrame)
	var data []byte
	var err error
	switch hdr.GetContentEncoding() {
	case "":
		var buf bytes.Buffer
		_, err = io.Copy(&limitedWriter{w: &buf, limit: p.opts.MaxUnzippedContentSize}, body)
		data = buf.Bytes()
	case "gzip":
		data, err = gunzipAll(body, p.opts.MaxUnzippedContentSize)
	default:
		return nil, "", result{agent: c.name, outcome: outcomeInvalidResponse, status: http.StatusBadGateway, reason: "unsupported content encoding " + strconv.Quote(hdr.GetContentEncoding())}
	}
	if err != nil {
		return nil, "", p.gunzipFailure(x, err, p.opts.MaxUnzippedContentSize)
	}
	return data, hdr.GetContentType(), result{agent: c.name, outcome: outcomeSuccess, status: http.StatusOK}
}
