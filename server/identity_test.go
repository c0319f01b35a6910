package server

import (
	"testing"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, path string
		want                bool
	}{
		{name: "literal", pattern: "app", path: "app", want: true},
		{name: "literal differs", pattern: "app", path: "apps", want: false},
		{name: "star suffix", pattern: "team_a_*", path: "team_a_node", want: true},
		{name: "star matches empty", pattern: "team_a_*", path: "team_a_", want: true},
		{name: "star prefix", pattern: "*_metrics", path: "x_metrics", want: true},
		{name: "star other team", pattern: "team_a_*", path: "team_b_node", want: false},
		{name: "question one", pattern: "node?", path: "node1", want: true},
		{name: "question needs one", pattern: "node?", path: "node", want: false},
		{name: "question not two", pattern: "node?", path: "node12", want: false},
		{name: "two stars", pattern: "*a*b*", path: "xxaxxbxx", want: true},
		{name: "backtracking", pattern: "*ab", path: "aab", want: true},
		{name: "star alone", pattern: "*", path: "anything", want: true},
		{name: "dot is literal", pattern: "a.b", path: "axb", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := globMatch(tt.pattern, tt.path); got != tt.want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestRegistryIdentityOwnsPath(t *testing.T) {
	t.Parallel()
	teamA, teamB := newIdentity(Identity{Name: "team-a", Token: "a"}), newIdentity(Identity{Name: "team-b", Token: "b"})
	tests := []struct {
		name          string
		firstID       *identity
		otherID       *identity
		first, other  bool // consolidated flags
		wantAccepted  bool
		wantConflict  bool
		wantDisplaced bool
	}{
		{name: "same identity displaces", firstID: teamA, otherID: teamA, wantAccepted: true, wantDisplaced: true},
		{name: "other identity cannot displace", firstID: teamA, otherID: teamB, wantConflict: true},
		{name: "other identity cannot join consolidated", firstID: teamA, otherID: teamB, first: true, other: true, wantConflict: true},
		{name: "same identity joins consolidated", firstID: teamA, otherID: teamA, first: true, other: true, wantAccepted: true},
		{name: "anonymous agents share one identity", wantAccepted: true, wantDisplaced: true},
		{name: "identity cannot take an anonymous agent's path", otherID: teamA, wantConflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry()
			a, b := testConn("a", tt.first), testConn("b", tt.other)
			a.identity, b.identity = tt.firstID, tt.otherID
			r.addAgent(a)
			r.addAgent(b)
			if res := r.registerPath(a, "p", nil); !res.accepted {
				t.Fatalf("first registration refused: %s", res.reason)
			}
			res := r.registerPath(b, "p", nil)
			if res.accepted != tt.wantAccepted || res.identityConflict != tt.wantConflict || (res.displaced != nil) != tt.wantDisplaced {
				t.Fatalf("accepted=%v conflict=%v displaced=%v (%s)", res.accepted, res.identityConflict, res.displaced != nil, res.reason)
			}
			owners, _, _, _ := r.lookup("p")
			if tt.wantConflict && (len(owners) != 1 || owners[0] != a || len(a.ownedPaths()) != 1) {
				t.Fatalf("after a refused takeover the owners are %d, first %v", len(owners), owners[0].id)
			}
		})
	}
}
