package sqldb

import "time"

// Micros is how Slipway's stores keep a time: Unix microseconds, one
// representation that both engines store, compare and index alike (no
// time zone or precision differences between PostgreSQL's timestamptz
// and SQLite's text). The zero time is 0, "not set".
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros is the time Micros stored, in UTC; 0 is the zero time.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
