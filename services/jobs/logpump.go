package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Defaults of the per-run log cap (Options.LogLines, Options.LogBytes):
// a million lines or 64 MiB of text, whichever comes first: the whole of
// a chatty batch job, while one run cannot fill the log store (Kubernetes
// keeps 50 MiB of a container's logs by default).
const (
	DefaultLogLines = 1_000_000
	DefaultLogBytes = 64 << 20
)

// Log pipeline bounds.
const (
	// storeBatchLines and storeBatchBytes bound one AppendLogs transaction.
	storeBatchLines = 1000
	storeBatchBytes = 4 << 20
	// truncatedStream is the stream of the line that says a run's lines
	// past its cap were dropped: it comes from Slipway, not the workload.
	truncatedStream = "slipway"
)

// pump moves one attempt's lines from the runtime into the store, and
// announces what it stored to live tails. Every line is stored until the
// run's cap; from the first line past it, lines are only counted, and one
// last line says how many were dropped.
type pump struct {
	s         *Service
	r         Run
	container string
	// skip are the lines stored before a restart of this replica: the
	// runtime replays a workload's output from the start, in order, so
	// they are the first ones. (Counting beats comparing timestamps, which
	// some runtimes only keep to the second.)
	skip int
	// done: the attempt's truncation line is stored, so is everything else.
	done bool
	// lines and bytes left of the run's cap.
	lines int
	bytes int64
	// dropped counts the lines (and their bytes) past the cap.
	dropped      int
	droppedBytes int64
	// last is the time of the last stored line: stored times increase
	// strictly within an attempt, so a reader continuing from a line's
	// time (the API has no other cursor) neither skips nor repeats one.
	last time.Time
	// read is when the pump last made progress (the runtime yielded a
	// line, or a batch was stored), in Unix nanoseconds.
	read atomic.Int64

	batch      []LogLine
	batchBytes int
}

// newPump sizes the pump for an attempt from what the run has stored.
func (s *Service) newPump(ctx context.Context, r Run, container string) (*pump, error) {
	p := &pump{s: s, r: r, container: container, lines: s.opts.LogLines, bytes: s.opts.LogBytes}
	p.touch()
	q := LogQuery{TeamID: r.TeamID, ProjectID: r.ProjectID, JobID: r.JobID, RunID: r.ID, Limit: 1000}
	for {
		batch, err := s.store.ReadLogs(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, l := range batch {
			if l.Container == container {
				p.skip++
				p.done = l.Stream == truncatedStream
				if l.Time.After(p.last) {
					p.last = l.Time
				}
			}
			if l.Stream != truncatedStream {
				p.lines--
				p.bytes -= int64(len(l.Text))
			}
		}
		if len(batch) < q.Limit {
			return p, nil
		}
		last := batch[len(batch)-1]
		q.AfterTime, q.AfterSeq = last.Time, last.Seq
	}
}

// lastRead is when the runtime last yielded a line (or the pump started,
// or was touched).
func (p *pump) lastRead() time.Time { return time.Unix(0, p.read.Load()) }

// touch counts now as progress.
func (p *pump) touch() { p.read.Store(time.Now().UnixNano()) }

// run stores the workload's lines until its stream ends (it has exited
// and everything it wrote was read) or ctx ends.
func (p *pump) run(ctx context.Context) {
	if p.done {
		return
	}
	s, r := p.s, p.r
	lines := make(chan runtime.LogLine, 256)
	go func() {
		defer close(lines)
		for l, err := range s.opts.Driver.Logs(ctx, r.WorkloadID, true) {
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, runtime.ErrNotFound) {
					s.log.Warn("reading workload logs", "run", r.ID, "error", err)
				}
				return
			}
			p.touch()
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				p.finish(ctx)
				return
			}
			p.take(ctx, l)
		case <-tick.C:
			// Lines that piled up (say, while the last batch was being
			// stored) go into this batch first: a busy store gets fewer,
			// fuller transactions instead of falling further behind.
			for pending := true; pending; {
				select {
				case l, ok := <-lines:
					if !ok {
						p.finish(ctx)
						return
					}
					p.take(ctx, l)
				default:
					pending = false
				}
			}
			p.flush(ctx)
		}
	}
}

// take adds a line the runtime yielded, split if it is too long.
func (p *pump) take(ctx context.Context, l runtime.LogLine) {
	for _, text := range splitLine(l.Text) {
		p.add(ctx, l, text)
	}
}

// add stores (in the next batch) or counts one piece of a line.
func (p *pump) add(ctx context.Context, l runtime.LogLine, text string) {
	if p.skip > 0 {
		p.skip--
		return
	}
	n := int64(len(text))
	if p.dropped > 0 || p.lines <= 0 || p.bytes < n {
		p.dropped++
		p.droppedBytes += n
		return
	}
	p.lines--
	p.bytes -= n
	p.append(ctx, LogLine{Time: l.Time, Stream: l.Stream, Text: text})
}

// append adds a line to the batch, stamping it, and stores a full batch.
func (p *pump) append(ctx context.Context, l LogLine) {
	r := p.r
	l.TeamID, l.ProjectID, l.JobID, l.RunID, l.Container = r.TeamID, r.ProjectID, r.JobID, r.ID, p.container
	// The store keeps microseconds.
	l.Time = l.Time.UTC().Truncate(time.Microsecond)
	if !l.Time.After(p.last) {
		l.Time = p.last.Add(time.Microsecond)
	}
	p.last = l.Time
	p.batch = append(p.batch, l)
	p.batchBytes += len(l.Text)
	if len(p.batch) >= storeBatchLines || p.batchBytes >= storeBatchBytes {
		p.flush(ctx)
	}
}

// finish stores the last batch and, past the cap, the truncation line.
func (p *pump) finish(ctx context.Context) {
	if p.dropped > 0 && ctx.Err() == nil {
		p.append(ctx, LogLine{Time: p.s.opts.Clock(), Stream: truncatedStream, Text: fmt.Sprintf(
			"[slipway] log truncated: %d more lines (%d bytes) were not stored; a run keeps at most %d lines and %d bytes of logs",
			p.dropped, p.droppedBytes, p.s.opts.LogLines, p.s.opts.LogBytes)})
	}
	p.flush(ctx)
}

// flush stores the batch and announces it to live tails.
func (p *pump) flush(ctx context.Context) {
	if len(p.batch) == 0 {
		return
	}
	// Storing outlives a cancelled pump: these lines were read already.
	stored, err := p.s.store.AppendLogs(context.WithoutCancel(ctx), p.batch)
	p.batch, p.batchBytes = nil, 0
	// Storing is progress too: meanwhile the runtime's lines wait.
	p.touch()
	if err != nil {
		p.s.log.Warn("storing log lines", "run", p.r.ID, "error", err)
		return
	}
	p.s.publishLines(p.r, stored)
}

// splitLine makes a line storable: text that is not UTF-8 (or holds NUL,
// which PostgreSQL's text refuses) gets U+FFFD in place of the bad bytes,
// and a line longer than runtime.MaxLineBytes (which no driver yields,
// but the cap must hold whatever the runtime) is split into pieces of at
// most that many bytes, on character boundaries.
func splitLine(text string) []string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	if strings.IndexByte(text, 0) >= 0 {
		text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	}
	if len(text) <= runtime.MaxLineBytes {
		return []string{text}
	}
	var pieces []string
	for len(text) > runtime.MaxLineBytes {
		cut := runtime.MaxLineBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		pieces = append(pieces, text[:cut])
		text = text[cut:]
	}
	return append(pieces, text)
}

// encodeChunks encodes lines as JSON arrays of at most limit bytes each,
// for messages with a size limit (NATS' max_payload). A line that alone
// exceeds limit is left out (and counted in skipped).
func encodeChunks(lines []LogLine, limit int) (chunks [][]byte, skipped int) {
	var cur []byte
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			skipped++
			continue
		}
		if len(b)+2 > limit {
			skipped++
			continue
		}
		if len(cur) > 0 && len(cur)+1+len(b)+1 > limit {
			chunks = append(chunks, append(cur, ']'))
			cur = nil
		}
		if len(cur) == 0 {
			cur = append(cur, '[')
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, b...)
	}
	if len(cur) > 0 {
		chunks = append(chunks, append(cur, ']'))
	}
	return chunks, skipped
}
