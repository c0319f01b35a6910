package pathspec

import "testing"

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{"simple", "app1_metrics", true},
		{"dots and dashes", "node-exporter.v2", true},
		{"colon and tilde", "a:b~c", true},
		{"empty", "", false},
		{"slash", "a/b", false},
		{"dot", ".", false},
		{"dotdot", "..", false},
		{"query", "a?b", false},
		{"space", "a b", false},
		{"percent", "a%2Fb", false},
		{"too long", string(make([]byte, MaxLen+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := Validate(tt.path); (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
		})
	}
}

func TestValidateGlob(t *testing.T) {
	t.Parallel()
	for g, ok := range map[string]bool{"team_a_*": true, "app?": true, "*": true, "": false, "a/*": false, "a b": false} {
		if err := ValidateGlob(g); (err == nil) != ok {
			t.Errorf("ValidateGlob(%q) = %v, want ok=%v", g, err, ok)
		}
	}
}
