package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Field is a name and value shown with a notification (a project, a
// build's commit...).
type Field struct{ Name, Value string }

// Notification is what a message says, before a platform's format.
type Notification struct {
	// Event is the event's key without the "trigger:" prefix, e.g.
	// "build:success".
	Event string
	// ID is the event's id, stable across attempts.
	ID string
	// Title is a short heading, e.g. "Build succeeded".
	Title string
	// Text is a one-line summary.
	Text string
	// Level is "info", "success", "warning" or "error" (anything else
	// reads as "info"); it picks a message's colour.
	Level string
	// Fields are shown as a list of facts.
	Fields []Field
	// Time is when the event happened.
	Time time.Time
	// Data is RAW_WEBHOOK's "data": any JSON (an object when nil).
	Data json.RawMessage
}

// The kinds of message Render knows, Northflank's integration types.
const (
	// RawWebhook is Slipway's own JSON: event, id, time and data.
	RawWebhook = "RAW_WEBHOOK"
	// Slack is a Slack incoming webhook's message (Block Kit).
	Slack = "SLACK"
	// Discord is a Discord webhook's message with one embed.
	Discord = "DISCORD"
	// Teams is a Microsoft Teams (Office 365) connector's MessageCard.
	Teams = "TEAMS"
	// TeamsWorkflows is a Microsoft Teams Workflows webhook's message with
	// an Adaptive Card 1.4, the connectors' successor.
	TeamsWorkflows = "TEAMS_WORKFLOWS"
)

// Render returns the JSON body of n in kind's format, cut to the
// platform's documented limits (a message over them is refused whole by
// the platform).
func Render(kind string, n Notification) ([]byte, error) {
	if n.Title == "" {
		n.Title = n.Event
	}
	if strings.TrimSpace(n.Title) == "" { // every platform needs a heading
		n.Title = "Slipway notification"
	}
	switch kind {
	case RawWebhook:
		return renderRaw(n)
	case Slack:
		return json.Marshal(renderSlack(n))
	case Discord:
		return json.Marshal(renderDiscord(n))
	case Teams:
		return fitTeams(n, func(n Notification) any { return renderMessageCard(n) })
	case TeamsWorkflows:
		return fitTeams(n, func(n Notification) any { return renderAdaptiveCard(n) })
	}
	return nil, fmt.Errorf("webhook: unknown message kind %q", kind)
}

func renderRaw(n Notification) ([]byte, error) {
	data := n.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	b, err := json.Marshal(struct {
		Event string          `json:"event"`
		ID    string          `json:"id"`
		Time  string          `json:"time"`
		Data  json.RawMessage `json:"data"`
	}{n.Event, n.ID, n.Time.UTC().Format(time.RFC3339), data})
	if err != nil {
		return nil, fmt.Errorf("webhook: data is not valid JSON: %w", err)
	}
	return b, nil
}

// truncate cuts s to at most max characters (runes), ending with an
// ellipsis when cut.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

func timeOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

// Slack's Block Kit limits
// (https://docs.slack.dev/reference/block-kit/blocks).
const (
	slackHeaderMax      = 150  // header block's plain_text
	slackSectionTextMax = 3000 // section block's text
	slackFieldsMax      = 10   // fields of one section
	slackFieldTextMax   = 2000 // one field's text
	slackBlocksMax      = 50   // blocks of a message
	slackTextMax        = 3000 // the top-level text, the notification's fallback
)

// slackEscape escapes what Slack's mrkdwn treats as markup (a "<!channel>"
// in a branch name must not ping a channel).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackMrkdwn escapes s and cuts it to max characters, so that no escape
// is cut in two.
func slackMrkdwn(s string, max int) string {
	if e := slackEscape.Replace(s); utf8.RuneCountInString(e) <= max {
		return e
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		piece := slackEscape.Replace(string(r))
		k := utf8.RuneCountInString(piece)
		if n+k > max-1 { // room for the ellipsis
			break
		}
		b.WriteString(piece)
		n += k
	}
	return b.String() + "…"
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

func renderSlack(n Notification) any {
	t := timeOrNow(n.Time)
	fallback := n.Title
	if n.Text != "" {
		fallback += ": " + n.Text
	}
	blocks := []slackBlock{{Type: "header", Text: &slackText{Type: "plain_text", Text: truncate(n.Title, slackHeaderMax), Emoji: true}}}
	if n.Text != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: slackMrkdwn(n.Text, slackSectionTextMax)}})
	}
	for i := 0; i < len(n.Fields) && len(blocks) < slackBlocksMax-1; i += slackFieldsMax {
		var fields []slackText
		for _, f := range n.Fields[i:min(i+slackFieldsMax, len(n.Fields))] {
			name := slackMrkdwn(f.Name, 200)
			fields = append(fields, slackText{Type: "mrkdwn", Text: "*" + name + "*\n" + slackMrkdwn(f.Value, slackFieldTextMax-utf8.RuneCountInString(name)-3)})
		}
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	// <!date^...|fallback> shows the time in the reader's time zone.
	when := fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.Format(time.RFC3339))
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: slackMrkdwn(n.Event, 200) + " · " + when}}})
	return struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}{truncate(fallback, slackTextMax), blocks}
}

// Discord's embed limits
// (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
const (
	discordTitleMax       = 256
	discordDescriptionMax = 4096
	discordFieldsMax      = 25
	discordFieldNameMax   = 256
	discordFieldValueMax  = 1024
	discordFooterMax      = 2048
	discordTotalMax       = 6000 // title, description, field names and values, footer
)

// levelColors are the colours of a Level: Slack's palette green, yellow
// and red, and a blue for information.
var levelColors = map[string]int{
	"info":    0x1D9BD1,
	"success": 0x2EB67D,
	"warning": 0xECB22E,
	"error":   0xE01E5A,
}

func levelColor(level string) int {
	if c, ok := levelColors[level]; ok {
		return c
	}
	return levelColors["info"]
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Color       int            `json:"color"`
	Timestamp   string         `json:"timestamp"`
	Fields      []discordField `json:"fields,omitempty"`
	Footer      *struct {
		Text string `json:"text"`
	} `json:"footer,omitempty"`
}

// nonEmpty is s, or a zero-width space where Discord requires a
// non-empty string.
func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "\u200b"
	}
	return s
}

func renderDiscord(n Notification) any {
	e := discordEmbed{
		Title:       truncate(n.Title, discordTitleMax),
		Description: truncate(n.Text, discordDescriptionMax),
		Color:       levelColor(n.Level),
		Timestamp:   timeOrNow(n.Time).Format(time.RFC3339),
	}
	if n.Event != "" {
		e.Footer = &struct {
			Text string `json:"text"`
		}{truncate(n.Event, discordFooterMax)}
	}
	for _, f := range n.Fields[:min(len(n.Fields), discordFieldsMax)] {
		e.Fields = append(e.Fields, discordField{
			Name:   nonEmpty(truncate(f.Name, discordFieldNameMax)),
			Value:  nonEmpty(truncate(f.Value, discordFieldValueMax)),
			Inline: utf8.RuneCountInString(f.Value) <= 40,
		})
	}
	// The total: drop fields from the end, then cut the description.
	count := func() int {
		c := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
		if e.Footer != nil {
			c += utf8.RuneCountInString(e.Footer.Text)
		}
		for _, f := range e.Fields {
			c += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
		return c
	}
	for count() > discordTotalMax && len(e.Fields) > 0 {
		e.Fields = e.Fields[:len(e.Fields)-1]
	}
	if over := count() - discordTotalMax; over > 0 {
		e.Description = truncate(e.Description, utf8.RuneCountInString(e.Description)-over)
	}
	type mentions struct {
		Parse []string `json:"parse"`
	}
	return struct {
		Embeds []discordEmbed `json:"embeds"`
		// An empty parse list: nothing in a message pings anyone.
		AllowedMentions mentions `json:"allowed_mentions"`
	}{[]discordEmbed{e}, mentions{Parse: []string{}}}
}

// Teams limits a message to about 28 KB, both connectors' MessageCards and
// Workflows' Adaptive Cards
// (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using).
// Per field, Slipway keeps Discord's limits, which read well in a card.
const teamsMaxBytes = 28000

// fitTeams renders n with render and, while the JSON is over Teams' size,
// drops fields from the end, then cuts the text.
func fitTeams(n Notification, render func(Notification) any) ([]byte, error) {
	n.Title = truncate(n.Title, discordTitleMax)
	n.Text = truncate(n.Text, discordDescriptionMax)
	fields := make([]Field, 0, min(len(n.Fields), discordFieldsMax))
	for _, f := range n.Fields[:min(len(n.Fields), discordFieldsMax)] {
		fields = append(fields, Field{Name: truncate(f.Name, discordFieldNameMax), Value: truncate(f.Value, discordFieldValueMax)})
	}
	n.Fields = fields
	for {
		b, err := json.Marshal(render(n))
		if err != nil || len(b) <= teamsMaxBytes {
			return b, err
		}
		switch {
		case len(n.Fields) > 0:
			n.Fields = n.Fields[:len(n.Fields)-1]
		case n.Text != "":
			n.Text = truncate(n.Text, utf8.RuneCountInString(n.Text)/2)
		default:
			n.Title = truncate(n.Title, utf8.RuneCountInString(n.Title)/2)
		}
	}
}

// teamsColor is the MessageCard themeColor of a Level.
func teamsColor(level string) string {
	return fmt.Sprintf("%06X", levelColor(level))
}

type messageCardFact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func renderMessageCard(n Notification) any {
	type section struct {
		ActivitySubtitle string            `json:"activitySubtitle,omitempty"`
		Facts            []messageCardFact `json:"facts,omitempty"`
		Markdown         bool              `json:"markdown"`
	}
	var facts []messageCardFact
	for _, f := range n.Fields {
		facts = append(facts, messageCardFact{f.Name, f.Value})
	}
	sub := n.Event + " · " + timeOrNow(n.Time).Format(time.RFC3339)
	summary := n.Title
	if n.Text != "" {
		summary += ": " + n.Text
	}
	return struct {
		Type       string    `json:"@type"`
		Context    string    `json:"@context"`
		Summary    string    `json:"summary"`
		ThemeColor string    `json:"themeColor"`
		Title      string    `json:"title"`
		Text       string    `json:"text,omitempty"`
		Sections   []section `json:"sections"`
	}{
		Type: "MessageCard", Context: "https://schema.org/extensions",
		Summary: truncate(summary, discordTitleMax), ThemeColor: teamsColor(n.Level),
		Title: n.Title, Text: n.Text,
		Sections: []section{{ActivitySubtitle: sub, Facts: facts, Markdown: false}},
	}
}

// adaptiveColors are the Adaptive Card TextBlock colours of a Level.
var adaptiveColors = map[string]string{"success": "Good", "warning": "Warning", "error": "Attention"}

func renderAdaptiveCard(n Notification) any {
	type fact struct {
		Title string `json:"title"`
		Value string `json:"value"`
	}
	color := adaptiveColors[n.Level]
	if color == "" {
		color = "Accent"
	}
	body := []map[string]any{{
		"type": "TextBlock", "text": n.Title, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true,
	}}
	if n.Text != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": n.Text, "wrap": true})
	}
	if len(n.Fields) > 0 {
		facts := make([]fact, 0, len(n.Fields))
		for _, f := range n.Fields {
			facts = append(facts, fact{f.Name, f.Value})
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	body = append(body, map[string]any{
		"type": "TextBlock", "text": n.Event + " · " + timeOrNow(n.Time).Format(time.RFC3339),
		"isSubtle": true, "size": "Small", "wrap": true,
	})
	type attachment struct {
		ContentType string `json:"contentType"`
		ContentURL  any    `json:"contentUrl"`
		Content     any    `json:"content"`
	}
	return struct {
		Type        string       `json:"type"`
		Attachments []attachment `json:"attachments"`
	}{"message", []attachment{{
		ContentType: "application/vnd.microsoft.card.adaptive",
		Content: map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
			"type":    "AdaptiveCard",
			"version": "1.4",
			"body":    body,
			"msteams": map[string]any{"width": "Full"},
		},
	}}}
}
