package logquery

import (
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// Window is the part of a stored-lines read that every log table answers
// alike: a time range, a direction, where the previous page ended and how
// many lines at most.
type Window struct {
	// Lines with Start <= Time < End; zero bounds are open.
	Start, End time.Time
	// Backward reads newest first.
	Backward bool
	// AfterTime and AfterSeq continue a read past the line with this
	// (Time, Seq), in the read's direction; zero values start at the
	// window's edge.
	AfterTime time.Time
	AfterSeq  int64
	// Limit is the most lines returned.
	Limit int
}

// PageSQL builds the SELECT of one page of stored log lines from a table
// whose rows carry ts (Unix microseconds, sqldb.Micros) and seq, the
// line's order within its time. A store starts it with its table and
// owner, adds its own optional conditions with Where, and finishes it
// with Page.
type PageSQL struct {
	query string
	args  []any
}

// NewPageSQL starts a page's SELECT with query, which ends in a WHERE
// clause whose placeholders $1, $2, ... are args.
func NewPageSQL(query string, args ...any) *PageSQL {
	return &PageSQL{query: query, args: args}
}

// Where adds " AND cond" to the query: cond's %d verbs are replaced by the
// numbers of the placeholders that vals take, in order ("container = $%d").
func (p *PageSQL) Where(cond string, vals ...any) {
	marks := make([]any, len(vals))
	for i, v := range vals {
		p.args = append(p.args, v)
		marks[i] = len(p.args)
	}
	p.query += ` AND ` + fmt.Sprintf(cond, marks...)
}

// Page finishes the query with w's time range, its continuation, its
// order and its limit, and returns the query and its arguments.
func (p *PageSQL) Page(w Window) (query string, args []any) {
	if !w.Start.IsZero() {
		p.Where(`ts >= $%d`, sqldb.Micros(w.Start))
	}
	if !w.End.IsZero() {
		p.Where(`ts < $%d`, sqldb.Micros(w.End))
	}
	order := `ts, seq`
	if w.Backward {
		order = `ts DESC, seq DESC`
	}
	if !w.AfterTime.IsZero() || w.AfterSeq != 0 {
		// A row comparison is an index range on both engines.
		at := sqldb.Micros(w.AfterTime)
		if w.Backward {
			p.Where(`(ts, seq) < ($%d, $%d)`, at, w.AfterSeq)
		} else {
			p.Where(`(ts, seq) > ($%d, $%d)`, at, w.AfterSeq)
		}
	}
	p.args = append(p.args, w.Limit)
	return p.query + fmt.Sprintf(` ORDER BY %s LIMIT $%d`, order, len(p.args)), p.args
}
