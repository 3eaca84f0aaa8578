package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var when = time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)

func sample() Notification {
	return Notification{
		Event: "build:success", ID: "evt_1", Title: "Build succeeded", Text: "api built <!channel> & pushed",
		Level: "success", Time: when,
		Fields: []Field{{"Project", "shop"}, {"Service", "api"}, {"Commit", "abc1234"}},
		Data:   json.RawMessage(`{"buildId":"b1","status":"SUCCESS"}`),
	}
}

// huge is a notification over every platform's limits: long title and
// text, 40 fields of long names and values, multi-byte characters.
func huge() Notification {
	n := sample()
	n.Title = strings.Repeat("T", 1000)
	n.Text = strings.Repeat("é<", 10000)
	n.Fields = nil
	for range 40 {
		n.Fields = append(n.Fields, Field{strings.Repeat("n", 500), strings.Repeat("v€", 3000)})
	}
	return n
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return m
}

func runes(v any) int { return utf8.RuneCountInString(v.(string)) }

func TestRenderRaw(t *testing.T) {
	b, err := Render(RawWebhook, sample())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"build:success","id":"evt_1","time":"2026-12-05T09:30:00Z","data":{"buildId":"b1","status":"SUCCESS"}}`
	if string(b) != want {
		t.Fatalf("RAW_WEBHOOK = %s, want %s", b, want)
	}
	n := sample()
	n.Data = nil
	if b, _ := Render(RawWebhook, n); !strings.HasSuffix(string(b), `"data":{}}`) {
		t.Fatalf("no data: %s", b)
	}
	n.Data = json.RawMessage(`{"broken"`)
	if _, err := Render(RawWebhook, n); err == nil {
		t.Fatal("invalid data rendered")
	}
	if _, err := Render("PAGERDUTY", n); err == nil {
		t.Fatal("an unknown kind rendered")
	}
}

func TestRenderSlack(t *testing.T) {
	m := decode(t, must(Render(Slack, sample())))
	if m["text"] != "Build succeeded: api built <!channel> & pushed" {
		t.Fatalf("text = %q", m["text"])
	}
	blocks := m["blocks"].([]any)
	header := blocks[0].(map[string]any)
	if header["type"] != "header" || header["text"].(map[string]any)["type"] != "plain_text" || header["text"].(map[string]any)["text"] != "Build succeeded" {
		t.Fatalf("header block = %v", header)
	}
	section := blocks[1].(map[string]any)["text"].(map[string]any)
	if section["type"] != "mrkdwn" || section["text"] != "api built &lt;!channel&gt; &amp; pushed" {
		t.Fatalf("section = %v: mrkdwn must be escaped", section)
	}
	fields := blocks[2].(map[string]any)["fields"].([]any)
	if len(fields) != 3 || fields[0].(map[string]any)["text"] != "*Project*\nshop" {
		t.Fatalf("fields = %v", fields)
	}
	ctx := blocks[3].(map[string]any)
	if ctx["type"] != "context" || !strings.Contains(ctx["elements"].([]any)[0].(map[string]any)["text"].(string), "<!date^1796463000^") {
		t.Fatalf("context = %v", ctx)
	}

	// Over the limits: every text within Block Kit's.
	m = decode(t, must(Render(Slack, huge())))
	if runes(m["text"]) > slackTextMax {
		t.Errorf("text of %d characters", runes(m["text"]))
	}
	blocks = m["blocks"].([]any)
	if len(blocks) > slackBlocksMax {
		t.Errorf("%d blocks", len(blocks))
	}
	if n := runes(blocks[0].(map[string]any)["text"].(map[string]any)["text"]); n != slackHeaderMax {
		t.Errorf("header of %d characters", n)
	}
	if n := runes(blocks[1].(map[string]any)["text"].(map[string]any)["text"]); n > slackSectionTextMax || n < slackSectionTextMax-10 {
		t.Errorf("section text of %d characters", n)
	}
	total := 0
	for _, b := range blocks[2 : len(blocks)-1] {
		fs := b.(map[string]any)["fields"].([]any)
		if len(fs) > slackFieldsMax {
			t.Errorf("a section of %d fields", len(fs))
		}
		for _, f := range fs {
			if n := runes(f.(map[string]any)["text"]); n > slackFieldTextMax {
				t.Errorf("a field of %d characters", n)
			}
			total++
		}
	}
	if total != 40 {
		t.Errorf("%d fields shown, want 40", total)
	}
}

func TestRenderDiscord(t *testing.T) {
	m := decode(t, must(Render(Discord, sample())))
	e := m["embeds"].([]any)[0].(map[string]any)
	if e["title"] != "Build succeeded" || e["description"] != "api built <!channel> & pushed" || e["color"] != float64(0x2EB67D) || e["timestamp"] != "2026-12-05T09:30:00Z" {
		t.Fatalf("embed = %v", e)
	}
	if f := e["fields"].([]any)[0].(map[string]any); f["name"] != "Project" || f["value"] != "shop" || f["inline"] != true {
		t.Fatalf("field = %v", f)
	}
	if e["footer"].(map[string]any)["text"] != "build:success" {
		t.Fatalf("footer = %v", e["footer"])
	}
	if p := m["allowed_mentions"].(map[string]any)["parse"].([]any); len(p) != 0 {
		t.Fatalf("allowed_mentions = %v: nothing may ping", p)
	}

	e = decode(t, must(Render(Discord, huge())))["embeds"].([]any)[0].(map[string]any)
	total := runes(e["title"]) + runes(e["description"]) + runes(e["footer"].(map[string]any)["text"])
	if runes(e["title"]) > discordTitleMax || runes(e["description"]) > discordDescriptionMax {
		t.Errorf("title %d, description %d characters", runes(e["title"]), runes(e["description"]))
	}
	fields, _ := e["fields"].([]any)
	if len(fields) > discordFieldsMax {
		t.Errorf("%d fields", len(fields))
	}
	for _, f := range fields {
		f := f.(map[string]any)
		if runes(f["name"]) > discordFieldNameMax || runes(f["value"]) > discordFieldValueMax {
			t.Errorf("field name %d, value %d characters", runes(f["name"]), runes(f["value"]))
		}
		total += runes(f["name"]) + runes(f["value"])
	}
	if total > discordTotalMax {
		t.Errorf("embed of %d characters", total)
	}

	// Discord refuses empty names and values.
	n := sample()
	n.Fields = []Field{{"", ""}}
	f := decode(t, must(Render(Discord, n)))["embeds"].([]any)[0].(map[string]any)["fields"].([]any)[0].(map[string]any)
	if f["name"] == "" || f["value"] == "" {
		t.Fatalf("empty field = %v", f)
	}
}

func TestRenderTeamsMessageCard(t *testing.T) {
	m := decode(t, must(Render(Teams, sample())))
	if m["@type"] != "MessageCard" || m["@context"] != "https://schema.org/extensions" || m["themeColor"] != "2EB67D" || m["title"] != "Build succeeded" || m["summary"] == "" {
		t.Fatalf("card = %v", m)
	}
	facts := m["sections"].([]any)[0].(map[string]any)["facts"].([]any)
	if len(facts) != 3 || facts[2].(map[string]any)["name"] != "Commit" || facts[2].(map[string]any)["value"] != "abc1234" {
		t.Fatalf("facts = %v", facts)
	}
	if b := must(Render(Teams, huge())); len(b) > teamsMaxBytes {
		t.Fatalf("a card of %d bytes", len(b))
	}
}

func TestRenderTeamsWorkflowsAdaptiveCard(t *testing.T) {
	m := decode(t, must(Render(TeamsWorkflows, sample())))
	if m["type"] != "message" {
		t.Fatalf("message = %v", m)
	}
	a := m["attachments"].([]any)[0].(map[string]any)
	if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("attachment = %v", a)
	}
	c := a["content"].(map[string]any)
	if c["type"] != "AdaptiveCard" || c["version"] != "1.4" {
		t.Fatalf("card = %v", c)
	}
	body := c["body"].([]any)
	title := body[0].(map[string]any)
	if title["type"] != "TextBlock" || title["text"] != "Build succeeded" || title["color"] != "Good" || title["wrap"] != true {
		t.Fatalf("title = %v", title)
	}
	facts := body[2].(map[string]any)
	if facts["type"] != "FactSet" || len(facts["facts"].([]any)) != 3 || facts["facts"].([]any)[0].(map[string]any)["title"] != "Project" {
		t.Fatalf("facts = %v", facts)
	}
	if b := must(Render(TeamsWorkflows, huge())); len(b) > teamsMaxBytes {
		t.Fatalf("a card of %d bytes", len(b))
	}
}

// Every kind renders a notification with nothing in it.
func TestRenderEmpty(t *testing.T) {
	for _, kind := range []string{RawWebhook, Slack, Discord, Teams, TeamsWorkflows} {
		b, err := Render(kind, Notification{})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if kind != RawWebhook && !strings.Contains(string(b), "Slipway notification") {
			t.Errorf("%s: no heading: %s", kind, b)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello!", 5, "hell…"},
		{"ééééé", 3, "éé…"},
		{"abc", 0, ""},
	} {
		if got := truncate(tc.s, tc.max); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
