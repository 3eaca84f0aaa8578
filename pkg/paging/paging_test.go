package paging

import "testing"

func TestRoundTrip(t *testing.T) {
	r := Result(2, true, "my-project")
	if !r.GetHasNextPage() || r.GetCount() != 2 || r.Cursor == nil {
		t.Fatalf("Result = %v", r)
	}
	p, err := Parse(0, 7, r.GetCursor())
	if err != nil || p.After != "my-project" || p.Offset != 0 || p.Limit != DefaultPerPage {
		t.Fatalf("Parse(cursor) = %+v, %v", p, err)
	}
	if last := Result(1, false, "x"); last.Cursor != nil || last.GetHasNextPage() {
		t.Fatalf("last page %v has a cursor", last)
	}
	if p, _ := Parse(10, 3, ""); p.Offset != 20 || p.Limit != 10 {
		t.Fatalf("page 3 of 10 = %+v", p)
	}
	for _, bad := range []string{"!!", "="} {
		if _, err := Parse(0, 0, bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
