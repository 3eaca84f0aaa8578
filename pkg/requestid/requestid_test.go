package requestid

import (
	"context"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123":                 true,
		"7f1c0e1e-1f0b-4e5a-9d3c": true,
		"":                        false,
		"has space":               false,
		"new\nline":               false,
		"ünicode":                 false,
		strings.Repeat("a", 128):  true,
		strings.Repeat("a", 129):  false,
	} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v", id, !want)
		}
	}
}

func TestNewAndContext(t *testing.T) {
	a, b := New(), New()
	if a == b || !Valid(a) || len(a) != 32 {
		t.Fatalf("New gave %q and %q", a, b)
	}
	if got := FromContext(NewContext(context.Background(), a)); got != a {
		t.Fatalf("FromContext = %q", got)
	}
	if got := FromContext(context.Background()); got != "" {
		t.Fatalf("empty context gave %q", got)
	}
}
