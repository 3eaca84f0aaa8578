package addons

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/services/addons/engine"
)

// sqlCheck is a SQL engine's check of tables given as name, count,
// columns, ...
func sqlCheck(tables ...any) engine.Check {
	c := engine.Check{Counts: map[string]int64{}, Schema: map[string]string{}}
	for i := 0; i < len(tables); i += 3 {
		name := tables[i].(string)
		c.Counts[name] = int64(tables[i+1].(int))
		c.Schema[name] = tables[i+2].(string)
	}
	return c
}

// redisCheck is Redis's check of databases given as name, keys, ...
func redisCheck(dbs ...any) engine.Check {
	c := engine.Check{Counts: map[string]int64{}}
	for i := 0; i < len(dbs); i += 2 {
		c.Counts[dbs[i].(string)] = int64(dbs[i+1].(int))
	}
	return c
}

const (
	colsA = "id integer, at timestamp with time zone"
	colsB = "id integer, at timestamp with time zone, note text"
)

// TestSourceCheckCompare: a restored copy equals an unchanged source
// exactly; for a source that changed while the backup ran it must lie
// between the checks before and after, table by table, and anything out
// of bounds is named.
func TestSourceCheckCompare(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after engine.Check
		got           engine.Check
		// want lists what the error must mention; none: no error.
		want []string
	}{
		{name: "unchanged, equal",
			before: sqlCheck("public.t", 10, colsA, "public.u", 0, colsA), after: sqlCheck("public.t", 10, colsA, "public.u", 0, colsA),
			got: sqlCheck("public.t", 10, colsA, "public.u", 0, colsA)},
		{name: "unchanged, a row more",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA),
			got:  sqlCheck("public.t", 11, colsA),
			want: []string{"differs from the source", "public.t has 11, expected 10"}},
		{name: "unchanged, a table missing",
			before: sqlCheck("public.t", 10, colsA, "public.u", 1, colsA), after: sqlCheck("public.t", 10, colsA, "public.u", 1, colsA),
			got:  sqlCheck("public.t", 10, colsA),
			want: []string{"public.u is missing"}},
		{name: "unchanged, other columns",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA),
			got:  sqlCheck("public.t", 10, colsB),
			want: []string{"public.t has other columns"}},
		{name: "unchanged redis, a key lost",
			before: redisCheck("db0", 3), after: redisCheck("db0", 3), got: redisCheck("db0", 2),
			want: []string{"db0 has 2, expected 3"}},

		{name: "inserts, as before",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 20, colsA), got: sqlCheck("public.t", 10, colsA)},
		{name: "inserts, as after",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 20, colsA), got: sqlCheck("public.t", 20, colsA)},
		{name: "inserts, in between",
			before: sqlCheck("public.t", 10, colsA, "public.u", 5, colsA), after: sqlCheck("public.t", 20, colsA, "public.u", 5, colsA),
			got: sqlCheck("public.t", 13, colsA, "public.u", 5, colsA)},
		{name: "deletes, in between",
			before: sqlCheck("public.t", 20, colsA), after: sqlCheck("public.t", 10, colsA), got: sqlCheck("public.t", 15, colsA)},
		{name: "inserts, below",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 20, colsA), got: sqlCheck("public.t", 9, colsA),
			want: []string{"the source changed while the backup ran", "before: 1 tables, 10 rows; after: 1 tables, 20 rows",
				"public.t has 9, expected between 10 and 20"}},
		{name: "inserts, above",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 20, colsA), got: sqlCheck("public.t", 21, colsA),
			want: []string{"public.t has 21, expected between 10 and 20"}},
		{name: "deletes, above",
			before: sqlCheck("public.t", 20, colsA), after: sqlCheck("public.t", 10, colsA), got: sqlCheck("public.t", 25, colsA),
			want: []string{"public.t has 25, expected between 10 and 20"}},
		{name: "changed, an unchanged table differs",
			before: sqlCheck("public.t", 10, colsA, "public.u", 5, colsA), after: sqlCheck("public.t", 20, colsA, "public.u", 5, colsA),
			got:  sqlCheck("public.t", 15, colsA, "public.u", 4, colsA),
			want: []string{"public.u has 4, expected between 5 and 5"}},
		{name: "changed, a table in both missing",
			before: sqlCheck("public.t", 10, colsA, "public.u", 5, colsA), after: sqlCheck("public.t", 20, colsA, "public.u", 5, colsA),
			got:  sqlCheck("public.t", 15, colsA),
			want: []string{"public.u is missing"}},
		{name: "changed, a table nobody had",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 20, colsA),
			got:  sqlCheck("public.t", 15, colsA, "public.x", 0, colsA),
			want: []string{"public.x is unexpected"}},
		{name: "created while it ran, absent",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA, "public.new", 4, colsA),
			got: sqlCheck("public.t", 10, colsA)},
		{name: "created while it ran, present",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA, "public.new", 4, colsA),
			got: sqlCheck("public.t", 10, colsA, "public.new", 0, colsA)},
		{name: "created while it ran, too many rows",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA, "public.new", 4, colsA),
			got:  sqlCheck("public.t", 10, colsA, "public.new", 5, colsA),
			want: []string{"public.new has 5, expected between 0 and 4"}},
		{name: "created while it ran, other columns",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsA, "public.new", 4, colsA),
			got:  sqlCheck("public.t", 10, colsA, "public.new", 2, colsB),
			want: []string{"public.new has other columns than before or after"}},
		{name: "dropped while it ran, absent",
			before: sqlCheck("public.t", 10, colsA, "public.old", 3, colsA), after: sqlCheck("public.t", 10, colsA),
			got: sqlCheck("public.t", 10, colsA)},
		{name: "dropped while it ran, present",
			before: sqlCheck("public.t", 10, colsA, "public.old", 3, colsA), after: sqlCheck("public.t", 10, colsA),
			got: sqlCheck("public.t", 10, colsA, "public.old", 3, colsA)},
		{name: "altered while it ran, old columns",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsB), got: sqlCheck("public.t", 10, colsA)},
		{name: "altered while it ran, new columns",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsB), got: sqlCheck("public.t", 10, colsB)},
		{name: "altered while it ran, other columns",
			before: sqlCheck("public.t", 10, colsA), after: sqlCheck("public.t", 10, colsB), got: sqlCheck("public.t", 10, "id bigint"),
			want: []string{"public.t has other columns than before or after"}},
		{name: "several problems, all named",
			before: sqlCheck("public.a", 1, colsA, "public.b", 1, colsA), after: sqlCheck("public.a", 2, colsA, "public.b", 2, colsA),
			got:  sqlCheck("public.a", 3, colsA, "public.c", 0, colsA),
			want: []string{"public.a has 3, expected between 1 and 2", "public.b is missing", "public.c is unexpected"}},

		{name: "redis, keys added, in between",
			before: redisCheck("db0", 3), after: redisCheck("db0", 300), got: redisCheck("db0", 120)},
		{name: "redis, keys added, above",
			before: redisCheck("db0", 3), after: redisCheck("db0", 300), got: redisCheck("db0", 301),
			want: []string{"db0 has 301, expected between 3 and 300", "before: 1 databases, 3 keys; after: 1 databases, 300 keys"}},
		{name: "redis, first keys written while it ran",
			before: redisCheck(), after: redisCheck("db0", 7), got: redisCheck()},
		{name: "redis, every key deleted while it ran",
			before: redisCheck("db0", 7, "db1", 1), after: redisCheck("db1", 1), got: redisCheck("db0", 2, "db1", 1)},
		{name: "redis, a database lost",
			before: redisCheck("db0", 7, "db1", 1), after: redisCheck("db0", 9, "db1", 1), got: redisCheck("db0", 8),
			want: []string{"db1 is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the stored shape, as verification reads it.
			stored := roundTrip(t, sourceCheckMap(sourceCheck{Before: tc.before, After: tc.after}))
			src := sourceCheckFromMap(stored)
			err := src.compare(tc.got)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("compare: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("compare passed, want an error naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// roundTrip is m after the JSON round trip of the store.
func roundTrip(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSourceCheckStored: an unchanged source is stored as one check (the
// shape of backups taken before checks after the backup existed, which
// still read as unchanged); a changed one keeps both; the result and the
// message of a verification say what was compared.
func TestSourceCheckStored(t *testing.T) {
	before, after := sqlCheck("public.t", 10, colsA), sqlCheck("public.t", 12, colsA)
	same := roundTrip(t, sourceCheckMap(sourceCheck{Before: before, After: before}))
	if _, ok := same["after"]; ok {
		t.Fatalf("an unchanged source stored an after check: %v", same)
	}
	if got := sourceCheckFromMap(same); got.changed() || !got.Before.Equal(before) || !got.After.Equal(before) {
		t.Fatalf("unchanged source read back as %+v", got)
	}
	old := roundTrip(t, checkMap(before)) // what earlier versions stored
	if got := sourceCheckFromMap(old); got.changed() || !got.Before.Equal(before) {
		t.Fatalf("an earlier record read back as %+v", got)
	}
	changed := sourceCheckFromMap(roundTrip(t, sourceCheckMap(sourceCheck{Before: before, After: after})))
	if !changed.changed() || !changed.Before.Equal(before) || !changed.After.Equal(after) {
		t.Fatalf("changed source read back as %+v", changed)
	}

	got := sqlCheck("public.t", 11, colsA)
	res := roundTrip(t, verificationResult(&changed, got))
	if res["compared"] != comparedRange || res["sourceChanged"] != true ||
		!reflect.DeepEqual(res["sourceBefore"], roundTrip(t, checkMap(before))) || !reflect.DeepEqual(res["sourceAfter"], roundTrip(t, checkMap(after))) ||
		!reflect.DeepEqual(res["counts"], map[string]any{"public.t": float64(11)}) {
		t.Fatalf("changed result %v", res)
	}
	if msg := verifiedMessage(&changed, got); !strings.Contains(msg, "the source changed while the backup ran (before: 1 tables, 10 rows; after: 1 tables, 12 rows)") ||
		!strings.Contains(msg, "1 tables, 11 rows") {
		t.Fatalf("changed message %q", msg)
	}
	unchanged := sourceCheck{Before: before, After: before}
	res = roundTrip(t, verificationResult(&unchanged, before))
	if res["compared"] != comparedExact || res["sourceChanged"] != false || res["sourceBefore"] != nil {
		t.Fatalf("unchanged result %v", res)
	}
	if msg := verifiedMessage(&unchanged, before); !strings.HasSuffix(msg, "1 tables, 10 rows, as in the source") {
		t.Fatalf("unchanged message %q", msg)
	}
	// An imported dump has no source: only what the copy holds.
	if res := verificationResult(nil, got); res["compared"] != nil || verifiedMessage(nil, got) != "restored into a throwaway instance: 1 tables, 11 rows" {
		t.Fatalf("import result %v", res)
	}
}
