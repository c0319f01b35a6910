package server

import (
	"testing"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

func testConn(id string, consolidated bool) *agentConn {
	return newAgentConn(id, &promproxyv1.RegisterAgent{AgentName: "agent-" + id, Consolidated: consolidated}, "127.0.0.1:1")
}

func TestRegistryRegisterPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		first, other bool // consolidated flags of the first and second agent
		wantAccepted bool
		wantOwners   int
		wantDisplace bool
	}{
		{name: "non-consolidated displaces", first: false, other: false, wantAccepted: true, wantOwners: 1, wantDisplace: true},
		{name: "consolidated agents share", first: true, other: true, wantAccepted: true, wantOwners: 2},
		{name: "non-consolidated cannot join consolidated", first: true, other: false, wantAccepted: false, wantOwners: 1},
		{name: "consolidated cannot join non-consolidated", first: false, other: true, wantAccepted: false, wantOwners: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry()
			a, b := testConn("a", tt.first), testConn("b", tt.other)
			r.addAgent(a)
			r.addAgent(b)
			if res := r.registerPath(a, "p", nil); !res.accepted {
				t.Fatalf("first registration refused: %s", res.reason)
			}
			res := r.registerPath(b, "p", nil)
			if res.accepted != tt.wantAccepted {
				t.Fatalf("accepted = %v (%s), want %v", res.accepted, res.reason, tt.wantAccepted)
			}
			if !res.accepted && res.reason == "" {
				t.Fatal("refusal without a reason")
			}
			if (res.displaced != nil) != tt.wantDisplace {
				t.Fatalf("displaced = %v, want %v", res.displaced, tt.wantDisplace)
			}
			owners, _, ok, _ := r.lookup("p")
			if !ok || len(owners) != tt.wantOwners {
				t.Fatalf("owners = %d, want %d", len(owners), tt.wantOwners)
			}
			if tt.wantDisplace {
				if owners[0] != b {
					t.Fatal("newest registration does not own the path")
				}
				if len(a.ownedPaths()) != 0 {
					t.Fatalf("displaced agent still lists %v", a.ownedPaths())
				}
			}
		})
	}
}

func TestRegistryRemoveAgentOrphansPaths(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	a, b := testConn("a", true), testConn("b", true)
	r.addAgent(a)
	r.addAgent(b)
	r.registerPath(a, "shared", nil)
	r.registerPath(b, "shared", nil)
	r.registerPath(a, "only_a", nil)
	orphaned := r.removeAgent(a)
	if len(orphaned) != 1 || orphaned[0] != "only_a" {
		t.Fatalf("orphaned = %v, want [only_a]", orphaned)
	}
	if _, _, ok, gone := r.lookup("only_a"); ok || gone.IsZero() {
		t.Fatalf("only_a: ok=%v goneSince=%v, want unknown and remembered as gone", ok, gone)
	}
	owners, _, ok, _ := r.lookup("shared")
	if !ok || len(owners) != 1 || owners[0] != b {
		t.Fatalf("shared owners = %v", owners)
	}
	if r.agentCount() != 1 || r.pathCount() != 1 {
		t.Fatalf("agents=%d paths=%d, want 1 and 1", r.agentCount(), r.pathCount())
	}
}

func TestRegistryUnregister(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	a, b := testConn("a", false), testConn("b", false)
	r.registerPath(a, "p", nil)
	if removed, _ := r.unregisterPath(b, "p"); removed {
		t.Fatal("an agent removed a path it does not own")
	}
	removed, orphaned := r.unregisterPath(a, "p")
	if !removed || !orphaned {
		t.Fatalf("removed=%v orphaned=%v, want true true", removed, orphaned)
	}
}

func TestRegistryFailoverRotation(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	a, b := testConn("a", true), testConn("b", true)
	r.registerPath(a, "p", nil)
	r.registerPath(b, "p", nil)
	firsts := map[*agentConn]int{}
	for range 10 {
		owners, _, _, _ := r.lookup("p")
		firsts[owners[0]]++
	}
	if firsts[a] != 5 || firsts[b] != 5 {
		t.Fatalf("rotation uneven: a=%d b=%d", firsts[a], firsts[b])
	}
}
