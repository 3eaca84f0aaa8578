// Package paging implements Northflank's list options once for every
// service: per_page (default 50, at most 100, enforced in the protos),
// page, and an opaque keyset cursor; and the pagination block of a list
// response, whose cursor is absent on the last page (clients stop there).
package paging

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"math"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
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

// SkipRows is the OFFSET of the page's query: Offset, or 0 when the page
// continues after a cursor, which already says where it starts.
func (p Page) SkipRows() int {
	if p.After != "" {
		return 0
	}
	return p.Offset
}

// Cursors issues the cursors of a service's lists and reads them back. A
// cursor is the last id of a page and the list it belongs to, sealed with
// AES-GCM (secret.Box) under a key derived from the server's encryption
// key: clients cannot read it, and a cursor that was altered, made up, or
// issued by another server or for another list is refused with a 400
// naming "cursor" rather than passed on to a query. Only what this server
// sealed reaches a store, so a store never sees a cursor's bytes chosen by
// a client (a NUL, or bytes that are not UTF-8, failed on PostgreSQL).
type Cursors struct {
	box *secret.Box
}

// cursorPurpose derives the cursors' key from the encryption key, apart
// from every other use of it.
const cursorPurpose = "paging-cursor"

// NewCursors returns the Cursors of a server whose encryption key is
// master (at least 32 bytes). Replicas of a service share the key, so a
// cursor one issues is read by any other, and by the same one after a
// restart.
func NewCursors(master []byte) (*Cursors, error) {
	box, err := secret.NewBox(master, cursorPurpose)
	if err != nil {
		return nil, err
	}
	return &Cursors{box: box}, nil
}

// EphemeralCursors returns Cursors under a random key, for a server built
// without one (tests): its cursors are read only by itself, until it stops.
func EphemeralCursors() *Cursors {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	c, err := NewCursors(master)
	if err != nil {
		panic(err) // the key has the length NewCursors needs
	}
	return c
}

// scopeTagLen is how much of the hash of a list's scope a cursor carries.
const scopeTagLen = 8

// scopeTag identifies the list a cursor belongs to.
func scopeTag(scope string) []byte {
	sum := sha256.Sum256([]byte(scope))
	return sum[:scopeTagLen]
}

// Parse turns a request's list options into a Page. A cursor wins over a
// page number; it must be one Result issued for the same scope, which
// names the list (its kind and parents, such as "jobs/<team>/<project>").
func (c *Cursors) Parse(scope string, perPage, page int32, cursor string) (Page, error) {
	p := Page{Limit: int(perPage)}
	if p.Limit == 0 {
		p.Limit = DefaultPerPage
	}
	if cursor != "" {
		after, ok := c.open(scope, cursor)
		if !ok {
			return Page{}, apierr.InvalidField("cursor", "is not a cursor this API returned for this list")
		}
		p.After = after
		return p, nil
	}
	if page > 1 {
		p.Offset = int(page-1) * p.Limit
	}
	return p, nil
}

// Result describes a page of count items of the list scope whose last id
// is lastID, with more following or not, out of total items in the whole
// list (the gateway's Total header and the pagination block's "total").
func (c *Cursors) Result(scope string, count int, more bool, lastID string, total int) *apiv1.Pagination {
	t := int32(min(total, math.MaxInt32))
	out := &apiv1.Pagination{HasNextPage: more, Count: int32(count), Total: &t}
	if more {
		cursor := c.seal(scope, lastID)
		out.Cursor = &cursor
	}
	return out
}

func (c *Cursors) seal(scope, lastID string) string {
	plain := append(scopeTag(scope), lastID...)
	return base64.RawURLEncoding.EncodeToString(c.box.Seal(plain))
}

func (c *Cursors) open(scope, cursor string) (string, bool) {
	sealed, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", false
	}
	plain, err := c.box.Open(sealed)
	if err != nil || len(plain) <= scopeTagLen || subtle.ConstantTimeCompare(plain[:scopeTagLen], scopeTag(scope)) != 1 {
		return "", false
	}
	return string(plain[scopeTagLen:]), true
}

// Rows is what Collect reads: *sql.Rows.
type Rows interface {
	Next() bool
	Err() error
	Close() error
}

// RowQuerier is what Count reads through: *sqldb.DB, or a transaction.
type RowQuerier interface {
	QueryRow(ctx context.Context, query string, args ...any) sqldb.Row
}

// Count returns how many rows `SELECT COUNT(*) FROM <from>` finds, from
// being a table and the WHERE clause of a list's page query without its
// cursor condition: the list's total, every page included. A store counts
// in the same call that reads the page, with the same filters, so a total
// never describes another list than the page.
func Count(ctx context.Context, db RowQuerier, from string, args ...any) (int, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+from, args...).Scan(&n); err != nil {
		return 0, err
	}
	return int(n), nil
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
