package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	defaultAckWait = 30 * time.Second
	// Redelivery after a handler error waits nakBase, doubling per attempt
	// up to nakMax: quick for a blip, gentle for a persistent failure.
	nakBase = time.Second
	nakMax  = time.Minute
	// ackTimeout bounds waiting for the server to confirm an ack.
	ackTimeout = 5 * time.Second
	// fetchWait is how long one pull request waits on the server for an
	// event; fetchHeartbeat lets a request lost with a NATS server be
	// noticed after two missed beats rather than at fetchWait.
	fetchWait      = 30 * time.Second
	fetchHeartbeat = 3 * time.Second
	// resubscribeDelay paces re-attaching after the consumer vanished or
	// the subscription failed, so a persistent problem does not spin.
	resubscribeDelay = time.Second
)

// Handler processes one event. Returning nil acknowledges it; an error
// asks for redelivery later. Delivery is at least once, so a handler must
// be idempotent — typically by calling MarkProcessed in the transaction
// that applies the event.
type Handler func(ctx context.Context, ev Event) error

// ConsumerConfig describes a durable consumer of the event stream.
type ConsumerConfig struct {
	// Durable names the consumer; it is the resume point shared by every
	// replica of the service and must stay stable across deployments.
	Durable string
	// Subjects filters the events, e.g. SubjectFor("projects", "project", "*").
	Subjects []string
	// MaxDeliver is how often an event is tried before it is given up on;
	// zero means forever, so nothing is silently dropped.
	MaxDeliver int
	// AckWait is how long a delivery may stay unacknowledged before it is
	// redelivered (default 30s). Long handlers are kept alive
	// automatically, so this is about detecting crashed consumers.
	AckWait time.Duration
	// Logger receives malformed-message and handler-failure reports
	// (default slog.Default). Payloads are never logged.
	Logger *slog.Logger
}

// Consume creates or updates the durable pull consumer described by cfg
// and feeds its events to handle, one at a time, until ctx is done or stop
// is called. stop cancels the context handed to the handler and waits for
// the handler in flight to return. A failed event is redelivered after a
// delay that doubles per attempt (1s up to 1m). A new durable
// starts from the oldest event the stream still holds. Messages that are
// not valid events are terminated (never redelivered) and logged.
//
// Errors are returned only for setup; afterwards NATS outages are ridden
// out by reconnecting. Several replicas may consume the same durable: each
// event then goes to one of them.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handle Handler) (stop func(), err error) {
	if cfg.Durable == "" {
		return nil, errors.New("events: consumer needs a durable name")
	}
	if len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("events: consumer %s has no subjects", cfg.Durable)
	}
	if handle == nil {
		return nil, fmt.Errorf("events: consumer %s has no handler", cfg.Durable)
	}
	c := &consumer{js: js, cfg: cfg, handle: handle, log: cfg.Logger}
	if c.cfg.AckWait <= 0 {
		c.cfg.AckWait = defaultAckWait
	}
	if c.cfg.MaxDeliver <= 0 {
		c.cfg.MaxDeliver = -1
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("consumer", cfg.Durable)
	cons, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, cons)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

type consumer struct {
	js     jetstream.JetStream
	cfg    ConsumerConfig
	handle Handler
	log    *slog.Logger
}

func (c *consumer) attach(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		FilterSubjects: c.cfg.Subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     c.cfg.MaxDeliver,
	})
	if err != nil {
		return nil, fmt.Errorf("events: create consumer %s: %w", c.cfg.Durable, err)
	}
	return cons, nil
}

func (c *consumer) run(ctx context.Context, cons jetstream.Consumer) {
	for {
		if cons != nil && !c.consume(ctx, cons) {
			return
		}
		if !sleep(ctx, resubscribeDelay) {
			return
		}
		// The consumer may have been deleted or the stream recreated
		// (e.g. a NATS server that lost its store); attaching again heals
		// both.
		var err error
		if cons, err = c.attach(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("events: cannot re-attach consumer, retrying", "err", err)
		}
	}
}

// consume feeds messages to the handler until ctx is done (it then returns
// false) or fetching fails in a way that re-attaching may heal (true).
//
// It pulls one message per request rather than using the library's
// continuous Consume/Messages: those prefetch, and every prefetched message
// starts its AckWait clock behind a slow handler; and with a prefetch of
// one their pull accounting can race and stall until the next missed
// heartbeat (observed: 30s pauses). A fetch per message costs a few extra
// protocol round trips, which lifecycle-event volumes easily afford.
func (c *consumer) consume(ctx context.Context, cons jetstream.Consumer) (again bool) {
	for {
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(fetchHeartbeat))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return false
			}
			c.log.Warn("events: cannot fetch, re-attaching", "err", err)
			return true
		}
		for msg := range batch.Messages() {
			c.process(ctx, msg)
		}
		cancel()
		if ctx.Err() != nil {
			// Best effort: let the server see the fetch's unsubscribe before
			// a restarted consumer pulls on this connection, so no event is
			// handed to the abandoned request and delayed by AckWait.
			_ = c.js.Conn().FlushTimeout(ackTimeout)
			return false
		}
		switch err := batch.Error(); {
		case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoHeartbeat):
			// Idle, or the request died with a NATS server: pull again.
		default:
			c.log.Warn("events: fetch failed, re-attaching", "err", err)
			return true
		}
	}
}

func (c *consumer) process(ctx context.Context, msg jetstream.Msg) {
	delivered := uint64(1)
	var streamSeq uint64
	if md, err := msg.Metadata(); err == nil {
		delivered, streamSeq = md.NumDelivered, md.Sequence.Stream
	}
	var ev Event
	err := json.Unmarshal(msg.Data(), &ev)
	if err == nil {
		err = ev.validate()
	}
	if err != nil {
		c.log.Error("events: terminating malformed message",
			"subject", msg.Subject(), "stream_seq", streamSeq, "err", err)
		if err := msg.TermWithReason("malformed event"); err != nil {
			c.log.Warn("events: cannot terminate malformed message", "stream_seq", streamSeq, "err", err)
		}
		return
	}

	stopKeepAlive := c.keepAlive(msg)
	herr := c.handle(ctx, ev)
	stopKeepAlive()

	if herr == nil {
		// Waiting for the server's confirmation means an acked event is
		// really not coming back, even if we stop right after.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if err := msg.DoubleAck(actx); err != nil {
			c.log.Warn("events: ack failed; the event will be redelivered",
				"event_id", ev.ID, "type", ev.Type, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		// Shutting down: hand the event straight to another replica.
		_ = msg.Nak()
		return
	}
	if c.cfg.MaxDeliver > 0 && delivered >= uint64(c.cfg.MaxDeliver) {
		c.log.Error("events: handler failed for the last allowed time; giving up on event",
			"event_id", ev.ID, "type", ev.Type, "delivery", delivered, "err", herr)
		_ = msg.TermWithReason("max deliveries reached")
		return
	}
	delay := nakDelay(delivered)
	c.log.Warn("events: handler failed; event will be redelivered",
		"event_id", ev.ID, "type", ev.Type, "delivery", delivered, "retry_in", delay, "err", herr)
	if err := msg.NakWithDelay(delay); err != nil {
		c.log.Warn("events: nak failed; the event will be redelivered after AckWait",
			"event_id", ev.ID, "err", err)
	}
}

// keepAlive tells the server the message is still being worked on, so a
// handler slower than AckWait is not raced by a redelivery of its event.
func (c *consumer) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(c.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func nakDelay(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	if delivered > 7 { // 1s<<6 already exceeds nakMax
		return nakMax
	}
	return min(nakBase<<(delivered-1), nakMax)
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
