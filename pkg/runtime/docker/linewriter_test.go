package docker

import (
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// TestLineWriterCapsLines: a line longer than MaxLineBytes is split at it
// however the engine's pieces fall: all in one message, or pieces whose
// last one ends the line past the cap.
func TestLineWriterCapsLines(t *testing.T) {
	long := strings.Repeat("0", 70000)
	want := []string{long[:MaxLineBytes], long[MaxLineBytes:], "next"}
	for name, pieces := range map[string][]string{
		"one message":       {long + "\nnext\n"},
		"8 KiB pieces":      chunks(long+"\nnext\n", 8<<10),
		"last piece passes": {long[:MaxLineBytes-10], long[MaxLineBytes-10:] + "\n", "next\n"},
	} {
		var got []string
		w := &lineWriter{stream: "stdout", emit: func(l runtime.LogLine) bool { got = append(got, l.Text); return true }}
		for _, p := range pieces {
			if _, err := w.Write([]byte("2026-12-04T20:00:00Z " + p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			lens := []int{}
			for _, g := range got {
				lens = append(lens, len(g))
			}
			t.Errorf("%s: lines of %v bytes, want %d, %d, 4", name, lens, MaxLineBytes, 70000-MaxLineBytes)
		}
	}
}

func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}
