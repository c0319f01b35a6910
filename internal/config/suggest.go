package config

import (
	"reflect"
	"regexp"
	"sort"
	"strings"
)

var indexRE = regexp.MustCompile(`\[\d+\]`)

// suggest returns the known key an unknown one was most likely meant to
// be: a sibling within a small edit distance, or the same name in another
// section (agent.maxConcurrentClients -> agent.http.maxConcurrentClients).
func (s *Schema) suggest(key, parent string) string {
	leaf := key[strings.LastIndex(key, ".")+1:]
	// Keys inside list elements are matched without their index.
	bare := indexRE.ReplaceAllString(key, "")
	bareParent := indexRE.ReplaceAllString(parent, "")
	best, bestDist := "", 0
	consider := func(candidate, candLeaf string, limit int) {
		d := distance(strings.ToLower(leaf), strings.ToLower(candLeaf))
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = candidate, d
		}
	}
	limit := 1 + len(leaf)/5
	for _, cand := range s.allKeys() {
		cp, cl := splitKey(cand)
		if cp == bareParent {
			consider(restoreIndex(key, cand, bare), cl, limit)
		}
	}
	if best != "" {
		return best
	}
	// The same name in one other section: only an exact (case-insensitive)
	// and unambiguous match, since a near miss or one of several sections
	// is more confusing than helpful.
	var found []string
	for _, cand := range s.allKeys() {
		if _, cl := splitKey(cand); strings.EqualFold(cl, leaf) && cand != bare {
			found = append(found, cand)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// restoreIndex puts the list indexes of key back into a suggestion made
// from the index-free schema key, so "agent.pathConfigs[2].urll" suggests
// "agent.pathConfigs[2].url".
func restoreIndex(key, cand, bare string) string {
	if key == bare {
		return cand
	}
	prefix := key[:strings.LastIndex(key, ".")]
	_, leaf := splitKey(cand)
	return prefix + "." + leaf
}

// allKeys lists every key, including the keys of list elements and
// sections, so that suggestions reach them too.
func (s *Schema) allKeys() []string { return s.all }

func collectAllKeys(program string, root reflect.Type) []string {
	var all []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for name, sf := range structFields(t) {
			k := prefix + "." + name
			all = append(all, k)
			ft := sf.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(k, ft)
			}
		}
	}
	walk(program, root)
	sort.Strings(all)
	return all
}

func splitKey(k string) (parent, leaf string) {
	i := strings.LastIndex(k, ".")
	return k[:i], k[i+1:]
}

// distance is the edit distance between a and b counting insertions,
// deletions, substitutions and swaps of adjacent letters ("prot" is one
// edit from "port").
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
