// Package paging implements Northflank's list options once for every
// service: per_page (default 50, at most 100, enforced in the protos),
// page, and an opaque keyset cursor; and the pagination block of a list
// response, whose cursor is absent on the last page (clients stop there).
package paging

import (
	"encoding/base64"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
)

// DefaultPerPage is the page size when a request names none.
const DefaultPerPage = 50

// Page selects a slice of a list ordered by id: after a cursor when After
// is set, else at an offset.
type Page struct {
	After  string
	Offset int
	Limit  int
}

// Parse turns a request's list options into a Page. A cursor wins over a
// page number.
func Parse(perPage, page int32, cursor string) (Page, error) {
	p := Page{Limit: int(perPage)}
	if p.Limit == 0 {
		p.Limit = DefaultPerPage
	}
	if cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(after) == 0 {
			return Page{}, apierr.InvalidField("cursor", "is not a cursor returned by this API")
		}
		p.After = string(after)
		return p, nil
	}
	if page > 1 {
		p.Offset = int(page-1) * p.Limit
	}
	return p, nil
}

// Result describes a page of count items whose last id is lastID, with
// more following or not. The cursor is base64 so clients treat it as
// opaque rather than come to depend on it being an id.
func Result(count int, more bool, lastID string) *apiv1.Pagination {
	out := &apiv1.Pagination{HasNextPage: more, Count: int32(count)}
	if more {
		cursor := base64.RawURLEncoding.EncodeToString([]byte(lastID))
		out.Cursor = &cursor
	}
	return out
}

// Rows is what Collect reads: *sql.Rows.
type Rows interface {
	Next() bool
	Err() error
	Close() error
}

// Collect reads a page from rows queried with LIMIT page.Limit+1: the one
// extra row only says whether another page follows, and is dropped.
func Collect[T any](rows Rows, limit int, scan func() (T, error)) ([]T, bool, error) {
	defer rows.Close()
	out := make([]T, 0, limit+1)
	for rows.Next() {
		v, err := scan()
		if err != nil {
			return nil, false, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
