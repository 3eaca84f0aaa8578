package logquery_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/logquery"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPageSQL: pages of a log table read on both engines, forward and
// backward, within a time range, with a store's own condition, each
// continuing where the last ended, return every line once in order.
func TestPageSQL(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := sqltest.Open(t, engine)
		ctx := t.Context()
		if _, err := db.ExecContext(ctx, `CREATE TABLE lines (owner TEXT NOT NULL, container TEXT NOT NULL, ts BIGINT NOT NULL, seq BIGINT NOT NULL, text TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		// Two lines a second over ten seconds in container "a", one a
		// second in "b", and lines of another owner, which no page shows.
		for sec := range 10 {
			ts := sqldb.Micros(base.Add(time.Duration(sec) * time.Second))
			for _, row := range []struct {
				owner, container string
				seq              int64
			}{{"x", "a", 1}, {"x", "a", 2}, {"x", "b", 3}, {"y", "a", 1}} {
				if _, err := db.ExecContext(ctx, `INSERT INTO lines (owner, container, ts, seq, text) VALUES ($1, $2, $3, $4, $5)`,
					row.owner, row.container, ts, row.seq, fmt.Sprintf("%s%d.%d", row.container, sec, row.seq)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// read pages through owner x's container a from 2s to 8s.
		read := func(backward bool) []string {
			t.Helper()
			var got []string
			w := logquery.Window{Start: base.Add(2 * time.Second), End: base.Add(8 * time.Second), Backward: backward, Limit: 5}
			for range 10 {
				sel := logquery.NewPageSQL(`SELECT ts, seq, text FROM lines WHERE owner = $1`, "x")
				sel.Where(`container = $%d`, "a")
				query, args := sel.Page(w)
				rows, err := db.Query(ctx, query, args...)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for rows.Next() {
					var ts, seq int64
					var text string
					if err := rows.Scan(&ts, &seq, &text); err != nil {
						t.Fatal(err)
					}
					got = append(got, text)
					w.AfterTime, w.AfterSeq = sqldb.FromMicros(ts), seq
					n++
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				_ = rows.Close()
				if n < w.Limit {
					return got
				}
			}
			t.Fatal("paging did not end")
			return nil
		}
		var want []string
		for sec := 2; sec < 8; sec++ {
			want = append(want, fmt.Sprintf("a%d.1", sec), fmt.Sprintf("a%d.2", sec))
		}
		if got := read(false); !slices.Equal(got, want) {
			t.Errorf("forward: %v, want %v", got, want)
		}
		slices.Reverse(want)
		if got := read(true); !slices.Equal(got, want) {
			t.Errorf("backward: %v, want %v", got, want)
		}
	})
}
