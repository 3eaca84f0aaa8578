package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// TestSplitLine: nothing of a line is dropped; pieces fit the cap, end on
// character boundaries, and are valid UTF-8 without NUL (PostgreSQL's
// text refuses both, and proto strings must be UTF-8).
func TestSplitLine(t *testing.T) {
	long := strings.Repeat("é", runtime.MaxLineBytes) // 2 bytes each
	cases := []struct {
		in   string
		want []string
	}{
		{"", []string{""}},
		{"plain", []string{"plain"}},
		{"a\x00b", []string{"a\uFFFDb"}},
		{"\xffx\xfe", []string{"\uFFFDx\uFFFD"}},
		{long, []string{long[:runtime.MaxLineBytes], long[runtime.MaxLineBytes:]}},
		{"x" + long, []string{"x" + long[:runtime.MaxLineBytes-2], long[runtime.MaxLineBytes-2 : 2*runtime.MaxLineBytes-2], long[2*runtime.MaxLineBytes-2:]}},
	}
	for _, c := range cases {
		got := splitLine(c.in)
		if strings.Join(got, "") != strings.Join(c.want, "") || len(got) != len(c.want) {
			t.Errorf("splitLine(%.20q…) gave %d pieces, want %d", c.in, len(got), len(c.want))
			continue
		}
		for i := range got {
			if got[i] != c.want[i] || len(got[i]) > runtime.MaxLineBytes || !utf8.ValidString(got[i]) {
				t.Errorf("splitLine(%.20q…) piece %d: %d bytes %.20q…, want %.20q…", c.in, i, len(got[i]), got[i], c.want[i])
			}
		}
	}
}

// TestEncodeChunks: every chunk is a JSON array of whole lines within the
// limit, and together they hold every line once, in order.
func TestEncodeChunks(t *testing.T) {
	var lines []LogLine
	for i := range 300 {
		lines = append(lines, LogLine{RunID: "r", Container: "c", Stream: "stdout", Text: strings.Repeat("x", i*37%5000), Seq: int64(i)})
	}
	huge := LogLine{Text: strings.Repeat("y", 20000), Seq: 999}
	chunks, skipped := encodeChunks(append(lines, huge), 16<<10)
	if skipped != 1 {
		t.Fatalf("skipped %d lines, want the one longer than the limit", skipped)
	}
	var got []LogLine
	for _, c := range chunks {
		if len(c) > 16<<10 {
			t.Fatalf("a chunk of %d bytes", len(c))
		}
		var part []LogLine
		if err := json.Unmarshal(c, &part); err != nil || len(part) == 0 {
			t.Fatalf("chunk does not decode: %v", err)
		}
		got = append(got, part...)
	}
	if len(got) != len(lines) {
		t.Fatalf("%d lines in %d chunks, want %d", len(got), len(chunks), len(lines))
	}
	for i := range got {
		if got[i].Seq != int64(i) || got[i].Text != lines[i].Text {
			t.Fatalf("line %d is %d", i, got[i].Seq)
		}
	}
}
