package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/internal/redact"
)

// errScrapeTimeout is the cause of a scrape context that hit its deadline,
// told apart from Prometheus hanging up.
var errScrapeTimeout = errors.New("scrape timed out")

// result is how one scrape ended, for metrics and logs.
type result struct {
	outcome  string
	status   int
	bytes    int64
	encoding string
	reason   string
	// abort means the response was already started when the scrape failed:
	// the handler must break the connection so the client cannot mistake
	// the partial body for a complete one.
	abort bool
	// retry means another agent of the path may still answer.
	retry bool
	// written means the response status has been sent.
	written bool
	agent   string
}

func (p *Proxy) scrapeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{path}", p.handleScrape)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		res := result{outcome: outcomeInvalidPath, status: http.StatusNotFound,
			reason: fmt.Sprintf("%s %s is not a scrape path: scrape GET /<path>, where <path> is one path segment an agent registered", r.Method, r.URL.Path)}
		if r.URL.Path == "/" {
			res.outcome, res.reason = outcomeMissingPath, "no path given: scrape GET /<path>, where <path> is one path segment an agent registered"
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.URL.Path != "/" {
			res.status = http.StatusMethodNotAllowed
			w.Header().Set("Allow", "GET, HEAD")
		}
		writeFailure(w, res)
		p.record(r, "", time.Now(), res)
	})
	return mux
}

func (p *Proxy) handleScrape(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := r.PathValue("path")
	res := p.scrape(w, r, path)
	p.record(r, path, start, res)
	if res.abort {
		// The only way to tell an HTTP client that a started response is
		// broken is to break it.
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) record(r *http.Request, path string, start time.Time, res result) {
	elapsed := time.Since(start)
	p.metrics.scrapeRequests.WithLabelValues(res.outcome).Inc()
	if path != "" && res.outcome != outcomeInvalidPath && res.outcome != outcomeMissingPath {
		p.metrics.scrapeLatency.WithLabelValues(path, res.outcome).Observe(elapsed.Seconds())
		if res.outcome == outcomeSuccess {
			p.metrics.responseBytes.WithLabelValues(path, encodingLabel(res.encoding)).Observe(float64(res.bytes))
		}
	}
	if p.log.Enabled(r.Context(), levelDebug) {
		p.log.Debug("scrape", "path", path, "agent_name", res.agent, "outcome", res.outcome, "status", res.status,
			"bytes", res.bytes, "encoding", encodingLabel(res.encoding), "duration", elapsed, "reason", res.reason)
	}
}

func encodingLabel(enc string) string {
	if enc == "" {
		return "identity"
	}
	return enc
}

// writeFailure answers a scrape that failed before its response started.
func writeFailure(w http.ResponseWriter, res result) {
	if res.status == 0 {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(res.status)
	_, _ = io.WriteString(w, res.reason+"\n")
}

// scrapeTimeout is Prometheus' scrape timeout when it sent one, capped by
// the proxy's own ScrapeRequestTimeout.
func (p *Proxy) scrapeTimeout(r *http.Request) time.Duration {
	t := p.opts.ScrapeRequestTimeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		// A value so small that it rounds to no time at all is as
		// meaningless as a negative one, and would fail every scrape.
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 && secs < 1e6 {
			if d := time.Duration(secs * float64(time.Second)); d > 0 {
				t = min(t, d)
			}
		}
	}
	return t
}

// agentTimeout leaves the proxy a margin after the agent's deadline, so that
// a slow target comes back as the agent's clear "target timed out" rather
// than as the proxy giving up on the agent.
func agentTimeout(t time.Duration) time.Duration {
	return t - min(t/10, time.Second)
}

func acceptsGzip(r *http.Request) bool {
	// Walked with Cut rather than Split: this runs on every scrape.
	rest := r.Header.Get("Accept-Encoding")
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") || strings.TrimSpace(name) == "*" {
			if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

func (p *Proxy) scrape(w http.ResponseWriter, r *http.Request, path string) result {
	if p.stopping.Load() {
		res := result{outcome: outcomeProxyStopped, status: http.StatusServiceUnavailable, reason: "proxy is shutting down"}
		writeFailure(w, res)
		return res
	}
	if err := validatePath(path); err != nil {
		res := result{outcome: outcomeInvalidPath, status: http.StatusNotFound, reason: err.Error()}
		writeFailure(w, res)
		return res
	}
	owners, consolidated, ok, goneSince := p.reg.lookup(path)
	if !ok {
		res := result{outcome: outcomeInvalidPath, status: http.StatusNotFound, reason: fmt.Sprintf("no agent serves path %q", path)}
		if !goneSince.IsZero() {
			res.outcome = outcomeNoAgents
			res.status = http.StatusServiceUnavailable
			res.reason = fmt.Sprintf("no agent serves path %q: its last agent left %s ago", path, time.Since(goneSince).Round(time.Second))
		}
		writeFailure(w, res)
		return res
	}
	timeout := p.scrapeTimeout(r)
	ctx, cancel := context.WithTimeoutCause(r.Context(), timeout, errScrapeTimeout)
	defer cancel()

	if consolidated && len(owners) > 1 && p.opts.ConsolidatedMode == ConsolidatedMerge {
		return p.mergeScrape(ctx, w, r, path, owners, timeout)
	}
	var res result
	for _, c := range owners {
		res = p.forward(ctx, w, r, c, path, timeout)
		if !res.retry || ctx.Err() != nil {
			break
		}
	}
	if !res.written {
		writeFailure(w, res)
	}
	return res
}

// exchange is one scrape sent to one agent, up to its first frame.
type exchange struct {
	p     *Proxy
	ctx   context.Context
	conn  *agentConn
	call  *scrapeCall
	first *promproxyv1.ScrapeResult
	done  bool // the agent finished the scrape; no cancel needed
	owed  uint32
}

// start sends the scrape request and waits for the first frame.
func (p *Proxy) start(ctx context.Context, r *http.Request, c *agentConn, path string, timeout time.Duration) (*exchange, result) {
	res := result{agent: c.name}
	call, err := c.startScrape(p.opts.ScrapeCredit)
	if err != nil {
		res.outcome, res.status, res.reason, res.retry = outcomeAgentDisconnected, http.StatusServiceUnavailable, fmt.Sprintf("agent %q disconnected", c.name), true
		return nil, res
	}
	x := &exchange{p: p, ctx: ctx, conn: c, call: call}
	req := &promproxyv1.ScrapeRequest{
		ScrapeId: call.id,
		Path:     path,
		Query:    r.URL.RawQuery,
		Accept:   r.Header.Get("Accept"),
		// Under basic auth the web configuration consumed Prometheus'
		// credential for the proxy itself; what is left is for the target.
		Authorization: r.Header.Get("Authorization"),
		Timeout:       durationpb.New(agentTimeout(timeout)),
		InitialCredit: p.opts.ScrapeCredit,
		AcceptGzip:    true,
	}
	if req.Authorization != "" {
		p.warnAuthorizationOnce()
	}
	if err := c.send(ctx, &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeRequest{ScrapeRequest: req}}); err != nil {
		x.finish()
		return nil, x.failure(err)
	}
	f, err := x.nextFrame()
	if err != nil {
		x.finish()
		return nil, x.failure(err)
	}
	if f.GetHeader() == nil {
		x.finish()
		if t := f.GetTrailer(); t != nil && t.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
			return nil, x.failure(&failureError{failure: t.GetFailure(), message: redact.Text(t.GetMessage())})
		}
		return nil, x.failure(fmt.Errorf("%w: first frame has no header", errProtocol))
	}
	x.first = f
	return x, res
}

// nextFrame waits for the scrape's next frame, granting credit as frames are
// consumed so the agent can keep the pipe full.
func (x *exchange) nextFrame() (*promproxyv1.ScrapeResult, error) {
	if x.owed >= x.p.opts.ScrapeCredit/2 {
		grant := x.owed
		x.owed = 0
		x.call.granted.Add(grant)
		if err := x.conn.send(x.ctx, &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCredit{
			ScrapeCredit: &promproxyv1.ScrapeCredit{ScrapeId: x.call.id, Frames: grant},
		}}); err != nil {
			return nil, err
		}
	}
	var f *promproxyv1.ScrapeResult
	select {
	case f = <-x.call.frames:
	case <-x.conn.done:
		// The agent may have finished just before its session ended.
		select {
		case f = <-x.call.frames:
		default:
			return nil, errAgentGone
		}
	case <-x.ctx.Done():
		return nil, context.Cause(x.ctx)
	}
	x.owed++
	if f.GetTrailer() != nil {
		x.done = true
	}
	return f, nil
}

// finish forgets the scrape and, if the agent may still be working on it,
// tells the agent to stop.
func (x *exchange) finish() {
	if x.conn.endScrape(x.call) && !x.done {
		x.conn.trySend(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCancel{
			ScrapeCancel: &promproxyv1.ScrapeCancel{ScrapeId: x.call.id, Reason: "scrape abandoned by the proxy"},
		}})
	}
}

// failure classifies err into a result.
func (x *exchange) failure(err error) result {
	res := result{agent: x.conn.name, status: http.StatusServiceUnavailable}
	var fe *failureError
	var we *clientWriteError
	switch {
	case errors.As(err, &we):
		res.outcome, res.status, res.reason = outcomeClientCancelled, 0, err.Error()
	case errors.Is(err, errAgentGone):
		res.outcome, res.reason, res.retry = outcomeAgentDisconnected, fmt.Sprintf("agent %q disconnected before answering", x.conn.name), true
	case errors.Is(err, errScrapeTimeout):
		res.outcome, res.reason = outcomeTimedOut, fmt.Sprintf("agent %q did not answer within the scrape timeout", x.conn.name)
	case errors.Is(err, context.Canceled):
		res.outcome, res.status, res.reason = outcomeClientCancelled, 0, "client went away"
	case errors.Is(err, errChunkCRC):
		x.p.metrics.chunkValidation.WithLabelValues("chunk").Inc()
		res.outcome, res.status, res.reason = outcomeInvalidResponse, http.StatusBadGateway, "a body chunk from the agent failed its checksum"
	case errors.Is(err, errSummary):
		x.p.metrics.chunkValidation.WithLabelValues("summary").Inc()
		res.outcome, res.status, res.reason = outcomeInvalidResponse, http.StatusBadGateway, err.Error()
	case errors.Is(err, errProtocol), errors.Is(err, errUnexpectedHdr):
		res.outcome, res.status, res.reason = outcomeInvalidResponse, http.StatusBadGateway, err.Error()
	case errors.As(err, &fe):
		res.reason = fmt.Sprintf("agent %q: %s", x.conn.name, fe.message)
		switch fe.failure {
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND:
			res.outcome, res.status, res.retry = outcomePathNotFound, http.StatusNotFound, true
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_TIMEOUT:
			res.outcome = outcomeUpstreamTimedOut
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE:
			res.outcome, res.status = outcomeContentTooLarge, http.StatusRequestEntityTooLarge
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_BUSY:
			res.outcome, res.retry = outcomeAgentBacklogFull, true
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_AGENT_STOPPING:
			res.outcome, res.retry = outcomeAgentDisconnected, true
		case promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_ERROR:
			res.outcome, res.status = outcomeUpstreamError, http.StatusBadGateway
		default:
			res.outcome, res.status = outcomeInvalidResponse, http.StatusBadGateway
		}
	default:
		res.outcome, res.status, res.reason = outcomeInvalidResponse, http.StatusBadGateway, err.Error()
	}
	return res
}

// forward relays one agent's answer to Prometheus, streaming the body as
// its frames arrive.
func (p *Proxy) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, c *agentConn, path string, timeout time.Duration) result {
	p.metrics.inFlight.Inc()
	defer p.metrics.inFlight.Dec()
	x, res := p.start(ctx, r, c, path, timeout)
	if x == nil {
		return res
	}
	defer x.finish()
	hdr := x.first.GetHeader()
	multi := x.first.GetTrailer() == nil
	if multi {
		p.metrics.chunkedTransfers.Inc()
		defer p.metrics.chunkedTransfers.Dec()
	}
	body := newBodyStream(x.first, hdr.GetContentLength(), 0, x.nextFrame)
	status := int(hdr.GetStatusCode())
	if status < 100 || status > 999 {
		return x.failure(fmt.Errorf("%w: status code %d", errProtocol, status))
	}
	res.status = status
	res.outcome = outcomeSuccess
	if status < 200 || status > 299 {
		res.outcome = outcomeUpstreamError
	}
	h := w.Header()
	if ct := hdr.GetContentType(); ct != "" {
		h.Set("Content-Type", ct)
	} else {
		h["Content-Type"] = nil // no sniffing: pass the target's answer as it is
	}

	switch enc := hdr.GetContentEncoding(); {
	case enc == "" || (enc == "gzip" && acceptsGzip(r)):
		res.encoding = enc
		if enc != "" {
			h.Set("Content-Encoding", enc)
		}
		if n := hdr.GetContentLength(); n >= 0 {
			h.Set("Content-Length", strconv.FormatInt(n, 10))
		}
		// A body that ends within one batch, in one frame or several, is
		// verified whole before the status is committed: a failure is then
		// a clean answer with its reason instead of a broken transfer, and
		// the body leaves with a Content-Length in one write, not chunked.
		// A longer one gets its status when the first batch must go out.
		bw := getBatchWriter(w)
		defer putBatchWriter(bw)
		gate := &statusGate{w: w, status: status, bw: bw}
		n, err := body.WriteTo(gate)
		if err == nil {
			if !gate.committed {
				if hdr.GetContentLength() < 0 {
					h.Set("Content-Length", strconv.Itoa(bw.Buffered()))
				}
				gate.commitNow()
			}
			if err = bw.Flush(); err != nil {
				err = &clientWriteError{err}
			}
		}
		res.bytes, res.written = n, gate.committed
		switch {
		case err == nil:
			return res
		case !res.written:
			return x.failure(err)
		}
		p.metrics.transfersAbandoned.Inc()
		return written(x.failure(err), n)
	case enc == "gzip":
		return p.relayGunzipped(w, x, body, res, multi)
	default:
		return x.failure(fmt.Errorf("%w: unsupported content encoding %q", errProtocol, enc))
	}
}

// relayGunzipped decompresses the body for a client that does not accept
// gzip, enforcing MaxUnzippedContentSize while it decompresses.
func (p *Proxy) relayGunzipped(w http.ResponseWriter, x *exchange, body *bodyStream, res result, multi bool) result {
	limit := p.opts.MaxUnzippedContentSize
	if !multi {
		out, err := gunzipAll(body, limit)
		if err != nil {
			return p.gunzipFailure(x, err, limit)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(res.status)
		res.written = true
		n, werr := w.Write(out)
		res.bytes = int64(n)
		if werr != nil {
			return written(x.failure(&clientWriteError{werr}), res.bytes)
		}
		return res
	}
	zr, err := gzip.NewReader(body)
	if err != nil {
		return p.gunzipFailure(x, err, limit)
	}
	w.WriteHeader(res.status)
	res.written = true
	bw := getBatchWriter(w)
	defer putBatchWriter(bw)
	lw := &limitedWriter{w: bw, limit: limit}
	n, err := io.Copy(lw, zr)
	res.bytes = n
	if err == nil {
		err = zr.Close()
	}
	if err == nil {
		// Only a body that decompressed to its end, checksum included,
		// leaves the buffer's last bytes.
		if err = bw.Flush(); err != nil {
			err = &clientWriteError{err}
		}
	}
	if err != nil {
		p.metrics.transfersAbandoned.Inc()
		return written(p.gunzipFailure(x, err, limit), n)
	}
	return res
}

// batchBufSize is how much of a multi-frame body the proxy gathers before
// writing to Prometheus. net/http sends every write of a body of unknown
// length as a chunk of its own, in two system calls (the chunk header, then
// the data); gathering four 32 KiB frames into one write quarters those
// calls. The last bytes leave only once the body is known to be intact.
const batchBufSize = 128 << 10

var batchWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, batchBufSize) }}

func getBatchWriter(w io.Writer) *bufio.Writer {
	bw := batchWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// statusGate passes a body's bytes to a batch writer, and commits the
// response's status only just before the batch first has to go out.
type statusGate struct {
	w         http.ResponseWriter
	status    int
	bw        *bufio.Writer
	committed bool
}

func (g *statusGate) commitNow() {
	if !g.committed {
		g.w.WriteHeader(g.status)
		g.committed = true
	}
}

func (g *statusGate) Write(p []byte) (int, error) {
	if len(p) > g.bw.Available() {
		g.commitNow()
	}
	return g.bw.Write(p)
}

// putBatchWriter drops whatever was not flushed: after a failure, those
// bytes must never reach the client.
func putBatchWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	batchWriters.Put(bw)
}

// written marks a failure that happened after the response started: the
// handler has to abort the connection.
func written(res result, n int64) result {
	res.written, res.abort, res.bytes, res.retry = true, true, n, false
	return res
}

var errTooLarge = errors.New("decompressed body too large")

func (p *Proxy) gunzipFailure(x *exchange, err error, limit int64) result {
	switch {
	case errors.Is(err, errTooLarge):
		return result{agent: x.conn.name, outcome: outcomePayloadTooLarge, status: http.StatusRequestEntityTooLarge,
			reason: fmt.Sprintf("decompressed body exceeds maxUnzippedContentSizeMBytes (%d bytes)", limit)}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF):
		return result{agent: x.conn.name, outcome: outcomeInvalidGzip, status: http.StatusBadGateway, reason: "invalid gzip body: " + err.Error()}
	}
	return x.failure(err)
}

func gunzipAll(r io.Reader, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&limitedWriter{w: &buf, limit: limit}, zr); err != nil {
		return nil, err
	}
	if err := zr.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// limitedWriter fails before writing past limit bytes.
type limitedWriter struct {
	w     io.Writer
	limit int64
	n     int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.limit {
		return 0, errTooLarge
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		return n, &clientWriteError{err}
	}
	return n, nil
}
