package logquery

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// TailKeepalive is how often a live tail with nothing to say sends an
// empty batch: it tells a proxy the stream is alive and finds a vanished
// client.
const TailKeepalive = 30 * time.Second

// Tail is a live log tail: the recent lines, then every line published
// on subject (a JSON array of L per message, as the component's log pump
// publishes them) until ctx ends. It subscribes before reading the
// backlog, so that no line falls in between, and sends a line that is
// in both once, by its sequence number. backlog returns the recent lines,
// newest first when backward; keep filters the live lines (the backlog is
// already filtered); send sends a batch, and ping an empty one.
func Tail[L any](ctx context.Context, nc *nats.Conn, subject string, backward bool,
	backlog func(context.Context) ([]L, error), seq func(L) int64, keep func(L) bool, send func([]L) error, ping func() error) error {
	live := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(subject, live)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	lines, err := backlog(ctx)
	if err != nil {
		return err
	}
	if backward {
		slices.Reverse(lines)
	}
	sent := make(map[int64]bool, len(lines))
	for _, l := range lines {
		sent[seq(l)] = true
	}
	if len(lines) > 0 {
		if err := send(lines); err != nil {
			return err
		}
	}
	keepalive := time.NewTicker(TailKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-keepalive.C:
			if err := ping(); err != nil {
				return nil // the client went away
			}
		case msg := <-live:
			var batch []L
			if json.Unmarshal(msg.Data, &batch) != nil {
				continue
			}
			out := batch[:0]
			for _, l := range batch {
				if !sent[seq(l)] && keep(l) {
					out = append(out, l)
				}
			}
			if len(out) == 0 {
				continue
			}
			if err := send(out); err != nil {
				return err
			}
		}
	}
}

// SendPages sends lines in pages of at most MaxPageBytes by size (at least
// one line a page), in order: what every log tail does with a batch, so
// that no message outgrows what a client or a proxy takes.
func SendPages[L any](lines []L, size func(L) int, send func([]L) error) error {
	for len(lines) > 0 {
		n, total := 0, 0
		for n < len(lines) {
			s := size(lines[n])
			if n > 0 && total+s > MaxPageBytes {
				break
			}
			total += s
			n++
		}
		if err := send(lines[:n]); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}
