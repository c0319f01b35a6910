package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// TestStockGRPCAgent drives a whole session with grpc-go and no generated
// stubs of ours: an agent written against any stock gRPC library must be
// able to connect, register and answer scrapes.
func TestStockGRPCAgent(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	conn, err := grpc.NewClient("passthrough:///"+p.AgentAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "Session", ClientStreams: true, ServerStreams: true}, "/promproxy.v1.ProxyService/Session")
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *promproxyv1.SessionRequest) {
		if err := stream.SendMsg(m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	recv := func() *promproxyv1.SessionResponse {
		m := new(promproxyv1.SessionResponse)
		if err := stream.RecvMsg(m); err != nil {
			t.Fatalf("receive: %v", err)
		}
		return m
	}
	send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: "grpc-go"}}})
	if recv().GetRegisterAgentResult().GetAgentId() == "" {
		t.Fatal("no agent id")
	}
	send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{Path: "interop"}}})
	if !recv().GetRegisterPathResult().GetAccepted() {
		t.Fatal("path refused")
	}
	res := scrapeAsync(p, "/interop", nil)
	var req *promproxyv1.ScrapeRequest
	for req == nil {
		req = recv().GetScrapeRequest()
	}
	body := []byte("interop_metric 42\n")
	send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_ScrapeResult{ScrapeResult: &promproxyv1.ScrapeResult{
		ScrapeId:   req.GetScrapeId(),
		Header:     &promproxyv1.ScrapeHeader{StatusCode: 200, ContentType: "text/plain", ContentLength: int64(len(body))},
		Chunk:      body,
		ChunkCrc32: crc32.ChecksumIEEE(body),
		Trailer:    &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(body)},
	}}})
	if r := wait(t, res); r.status != 200 || r.body != string(body) {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

// TestListAgentsWithCurlJSON calls the unary debugging RPC the way an
// operator would with curl: HTTP/1.1, Connect protocol, JSON.
func TestListAgentsWithCurlJSON(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	register(t, p, "listed", false, "some_path")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+p.AgentAddr().String()+"/promproxy.v1.ProxyService/ListAgents", bytes.NewReader([]byte("{}")))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Fatalf("status %d over HTTP/%d: %s", resp.StatusCode, resp.ProtoMajor, raw)
	}
	var out struct {
		Agents []struct {
			AgentName string   `json:"agentName"`
			Paths     []string `json:"paths"`
		} `json:"agents"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(out.Agents) != 1 || out.Agents[0].AgentName != "listed" || strings.Join(out.Agents[0].Paths, ",") != "some_path" {
		t.Fatalf("agents %+v", out.Agents)
	}
}
