package paging

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

func TestRoundTrip(t *testing.T) {
	c := EphemeralCursors()
	r := c.Result("projects/acme", 2, true, "my-project", 7)
	if !r.GetHasNextPage() || r.GetCount() != 2 || r.Cursor == nil || r.Total == nil || r.GetTotal() != 7 {
		t.Fatalf("Result = %v", r)
	}
	p, err := c.Parse("projects/acme", 0, 7, r.GetCursor())
	if err != nil || p.After != "my-project" || p.Offset != 0 || p.Limit != DefaultPerPage {
		t.Fatalf("Parse(cursor) = %+v, %v", p, err)
	}
	if last := c.Result("projects/acme", 1, false, "x", 3); last.Cursor != nil || last.GetHasNextPage() {
		t.Fatalf("last page %v has a cursor", last)
	}
	if p, _ := c.Parse("projects/acme", 10, 3, ""); p.Offset != 20 || p.Limit != 10 {
		t.Fatalf("page 3 of 10 = %+v", p)
	}
}

// TestCursorsAreSealed: a cursor does not show the id it holds, and only
// a cursor this server issued for the same list is read back; anything
// else, the raw base64 ids earlier versions issued included, is a 400 on
// "cursor".
func TestCursorsAreSealed(t *testing.T) {
	master := bytes.Repeat([]byte("k"), 32)
	c, err := NewCursors(master)
	if err != nil {
		t.Fatal(err)
	}
	cursor := c.Result("jobs/acme/web", 1, true, "nightly-backup", 1).GetCursor()
	raw, _ := base64.RawURLEncoding.DecodeString(cursor)
	if strings.Contains(cursor, "nightly") || bytes.Contains(raw, []byte("nightly-backup")) {
		t.Fatalf("cursor %q shows the id", cursor)
	}
	// Another replica with the same key reads it.
	replica, _ := NewCursors(master)
	if p, err := replica.Parse("jobs/acme/web", 0, 0, cursor); err != nil || p.After != "nightly-backup" {
		t.Fatalf("replica: %+v, %v", p, err)
	}
	other, _ := NewCursors(bytes.Repeat([]byte("o"), 32))
	tampered := []byte(cursor)
	tampered[len(tampered)/2] ^= 1
	for name, bad := range map[string]struct{ scope, cursor string }{
		"NUL id of old":     {"jobs/acme/web", "AA"},
		"0xff id of old":    {"jobs/acme/web", "_w"},
		"old raw base64 id": {"jobs/acme/web", base64.RawURLEncoding.EncodeToString([]byte("nightly-backup"))},
		"not base64":        {"jobs/acme/web", "!!"},
		"padding":           {"jobs/acme/web", "="},
		"tampered":          {"jobs/acme/web", string(tampered)},
		"truncated":         {"jobs/acme/web", cursor[:len(cursor)-2]},
		"another list":      {"jobs/acme/db", cursor},
		"another team":      {"jobs/evil/web", cursor},
		"another server":    {"jobs/acme/web", other.Result("jobs/acme/web", 1, true, "nightly-backup", 1).GetCursor()},
	} {
		if _, err := c.Parse(bad.scope, 0, 0, bad.cursor); apierr.From(err) == nil || len(apierr.From(err).Fields["cursor"]) != 1 {
			t.Errorf("%s: cursor %q accepted (%v)", name, bad.cursor, err)
		}
	}
	if _, err := NewCursors([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}

// TestSkipRows: a page at an offset skips that many rows; a page after a
// cursor skips none, whatever its offset says.
func TestSkipRows(t *testing.T) {
	for _, c := range []struct {
		page Page
		want int
	}{
		{Page{Offset: 0, Limit: 10}, 0},
		{Page{Offset: 20, Limit: 10}, 20},
		{Page{After: "b", Offset: 20, Limit: 10}, 0},
	} {
		if got := c.page.SkipRows(); got != c.want {
			t.Errorf("%+v.SkipRows() = %d, want %d", c.page, got, c.want)
		}
	}
}
