package projects

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/webhook"
)

// Deliveries happen in two steps, so that none is lost and none is made
// for an event that was not committed:
//
//  1. The notifications consumer (NotificationHandler) reads lifecycle
//     events from the stream. For each it renders the body once per
//     matching integration or webhook and inserts one delivery row per
//     subscriber in the same transaction that marks the event processed
//     (inbox), so a redelivered event adds nothing.
//  2. The Dispatcher claims due rows with a lease and sends them from a
//     bounded pool of workers, recording every attempt and scheduling the
//     next with exponential back-off until the delivery's retry period
//     ends.

// ---- step 1: the consumer

// eventRefs are the ids every notified event's data carries.
type eventRefs struct {
	TeamID    string `json:"teamId"`
	ProjectID string `json:"projectId"`
	ID        string `json:"id"`
}

// NotificationHandler turns lifecycle events into deliveries. retryFor is
// how long each delivery is retried; wake (may be nil) tells the local
// dispatcher new rows are due.
func NotificationHandler(store NotificationStore, retryFor time.Duration, wake func(), log *slog.Logger) events.Handler {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, ev events.Event) error {
		kind, ok := eventMap[ev.Type]
		if !ok {
			return nil
		}
		var refs eventRefs
		if err := ev.Decode(&refs); err != nil || refs.TeamID == "" {
			// Redelivery cannot mend it: skip, and say so.
			log.Warn("notifications: event without a team", "type", ev.Type, "id", ev.ID)
			return nil
		}
		project := refs.ProjectID
		if strings.HasPrefix(ev.Type, events.SubjectFor("projects", "project", "")) {
			project = refs.ID
		}
		n, err := store.Enqueue(ctx, NotificationConsumer, ev.ID, refs.TeamID, func(subs Subscribers) ([]Delivery, error) {
			return deliveriesFor(ev, kind, refs.TeamID, project, subs, retryFor)
		})
		if err != nil {
			return fmt.Errorf("notifications: enqueue %s: %w", ev.ID, err)
		}
		if n > 0 && wake != nil {
			wake()
		}
		return nil
	}
}

// deliveriesFor renders ev for each subscriber that wants it: once per
// integration type (every integration of a type gets the same body) and
// once for all webhooks.
func deliveriesFor(ev events.Event, kind eventKind, team, project string, subs Subscribers, retryFor time.Duration) ([]Delivery, error) {
	now := time.Now().UTC()
	var out []Delivery
	add := func(target, id, typ string, body []byte) error {
		did, err := uuid.NewV7()
		if err != nil {
			return err
		}
		out = append(out, Delivery{
			ID: did.String(), TeamID: team, TargetKind: target, TargetID: id, EventID: ev.ID, EventType: typ, Body: body,
			Status: DeliveryPending, NextAttemptAt: now, RetryUntil: now.Add(retryFor), CreatedAt: now,
		})
		return nil
	}
	bodies := map[string][]byte{}
	for _, in := range subs.Integrations {
		if !in.wantsTrigger(kind.Trigger, project) {
			continue
		}
		body, ok := bodies[in.Type]
		if !ok {
			var err error
			if body, err = webhook.Render(in.Type, notificationOf(ev, kind, project)); err != nil {
				return nil, fmt.Errorf("render %s for %s: %w", ev.Type, in.Type, err)
			}
			bodies[in.Type] = body
		}
		if err := add(TargetIntegration, in.ID, kind.Trigger, body); err != nil {
			return nil, err
		}
	}
	var appBody []byte
	for _, w := range subs.Webhooks {
		if !w.wants(kind.Name) {
			continue
		}
		if appBody == nil {
			var err error
			if appBody, err = appPayload(ev, kind); err != nil {
				return nil, err
			}
		}
		if err := add(TargetWebhook, w.ID, kind.Name, appBody); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// summaryFields are the data fields a chat message shows, in this order,
// when the event has them.
var summaryFields = []struct{ key, label string }{
	{"projectId", "Project"}, {"serviceId", "Service"}, {"jobId", "Job"}, {"addonId", "Addon"},
	{"buildId", "Build"}, {"runName", "Run"}, {"name", "Name"}, {"branch", "Branch"}, {"sha", "Commit"},
	{"status", "Status"}, {"reason", "Reason"}, {"message", "Message"}, {"userId", "User"},
}

// notificationOf is ev as pkg/webhook renders it for chat platforms and
// RAW_WEBHOOK (whose "data" is the event's data as Slipway publishes it).
func notificationOf(ev events.Event, kind eventKind, project string) webhook.Notification {
	var data map[string]any
	_ = json.Unmarshal(ev.Data, &data)
	n := webhook.Notification{Event: kind.Trigger, ID: ev.ID, Title: kind.Title, Level: kind.Level, Time: ev.Time, Data: ev.Data}
	if n.Event == "" {
		n.Event = kind.Name
	}
	var parts []string
	for _, f := range summaryFields {
		v, ok := data[f.key]
		s := fmt.Sprint(v)
		if !ok || v == nil || s == "" {
			continue
		}
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		n.Fields = append(n.Fields, webhook.Field{Name: f.label, Value: s})
		if f.key == "serviceId" || f.key == "jobId" || f.key == "addonId" || f.key == "runName" {
			parts = append(parts, strings.ToLower(f.label)+" "+s)
		}
	}
	n.Text = kind.Title
	if len(parts) > 0 {
		n.Text += ": " + strings.Join(parts, ", ")
	}
	if project != "" {
		n.Text += " in project " + project
	}
	return n
}

// appPayload is the "your-app" API's webhook body.
func appPayload(ev events.Event, kind eventKind) ([]byte, error) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt string          `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}{ev.ID, kind.Name, ev.Time.UTC().Format(time.RFC3339Nano), data})
}

// ---- step 2: the dispatcher

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	// Sender makes the attempts (its timeout bounds each).
	Sender *webhook.Sender
	// Timeout is the sender's timeout: the lease of a claim outlasts it.
	Timeout time.Duration
	// Workers bounds the attempts in flight (default 8).
	Workers int
	// RetryBase is the first retry's delay, doubling per attempt
	// (default 10s); the delay is capped at an hour or the retry period.
	RetryBase time.Duration
	// RetryFor is the retry period of a delivery (default 24h), for the
	// cap above.
	RetryFor time.Duration
	// Poll is how often the dispatcher looks for due rows at least, so
	// rows another replica inserted are sent (default 2s).
	Poll time.Duration
	// Logger receives failures of the dispatcher itself (never a body or
	// a secret).
	Logger *slog.Logger
}

// keepDeliveries is how long concluded deliveries stay in the history;
// pruneEvery is how often older ones are deleted.
const (
	keepDeliveries = 30 * 24 * time.Hour
	pruneEvery     = time.Hour
)

// Dispatcher sends due deliveries. Several replicas may run one each over
// the same database: claims are leased, so an attempt is made once.
type Dispatcher struct {
	store NotificationStore
	opts  DispatcherOptions
	owner string
	wake  chan struct{}
}

// NewDispatcher returns a dispatcher over store.
func NewDispatcher(store NotificationStore, opts DispatcherOptions) *Dispatcher {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 10 * time.Second
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 24 * time.Hour
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Dispatcher{store: store, opts: opts, owner: uuid.NewString(), wake: make(chan struct{}, 1)}
}

// Wake tells the dispatcher that deliveries may be due now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// lease is how long a claim is held: longer than an attempt can take, so
// a claim only lapses when its replica died.
func (d *Dispatcher) lease() time.Duration { return d.opts.Timeout + 15*time.Second }

// maxDelay caps the back-off.
func (d *Dispatcher) maxDelay() time.Duration { return min(time.Hour, d.opts.RetryFor) }

// Run sends deliveries until ctx ends, then waits for the attempts in
// flight (they end with ctx: their claims lapse and are made again). Once
// an hour it deletes deliveries concluded more than 30 days ago.
func (d *Dispatcher) Run(ctx context.Context) error {
	slots := make(chan struct{}, d.opts.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	failures := 0
	var pruned time.Time
	for ctx.Err() == nil {
		if time.Since(pruned) > pruneEvery {
			pruned = time.Now()
			if _, err := d.store.Prune(ctx, pruned.Add(-keepDeliveries)); err != nil && ctx.Err() == nil {
				d.opts.Logger.Warn("notifications: pruning old deliveries failed", "err", err)
			}
		}
		free := cap(slots) - len(slots)
		now := time.Now().UTC()
		claims, err := d.store.Claim(ctx, d.owner, now, now.Add(d.lease()), free)
		// What Claim returns is leased to this replica even when it failed
		// part way: send it now rather than let it wait out the lease.
		for _, c := range claims {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.attempt(ctx, c)
				<-slots
				d.Wake()
			}()
		}
		if err != nil && ctx.Err() == nil {
			failures++
			d.opts.Logger.Warn("notifications: claiming deliveries failed", "err", err)
			sleepCtx(ctx, min(time.Duration(failures)*time.Second, 30*time.Second))
			continue
		}
		failures = 0
		if free > 0 && len(claims) == free {
			continue // more may be due
		}
		d.wait(ctx, free == 0)
	}
	return nil
}

// wait sleeps until woken, until the next delivery is due, or a poll
// interval passed. busy: every worker is busy, so only a finished attempt
// (which wakes) frees room.
func (d *Dispatcher) wait(ctx context.Context, busy bool) {
	delay := d.opts.Poll
	if !busy {
		if next, ok, err := d.store.NextDue(ctx); err == nil && ok {
			delay = min(delay, max(time.Until(next), 5*time.Millisecond))
		}
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-t.C:
	}
}

// attempt sends one claimed delivery and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, c Claim) {
	req := webhook.Request{URL: c.URL, ID: c.ID, Time: time.Now().UTC(), Body: c.Body, Header: http.Header{}}
	switch {
	case c.TargetKind == TargetWebhook:
		req.SigningKey = webhook.SigningKey(c.Secret)
	case c.Type == webhook.RawWebhook:
		req.Header.Set("X-Northflank-Notification-Integration-Id", c.TargetID)
		req.Header.Set("X-Northflank-Notification-Integration-Name", c.Name)
		req.Header.Set("X-Northflank-Notification-Event-Id", c.EventID)
		req.Header.Set("X-Northflank-Notification-Event-Type", c.EventType)
		if c.Secret != "" {
			req.Header.Set("X-Northflank-Notification-Token", c.Secret)
			req.SigningKey = webhook.SigningKey(c.Secret)
		}
	}
	res := d.opts.Sender.Send(ctx, req)
	if res.Err != nil && ctx.Err() != nil {
		// Cut off by shutdown: the claim lapses and the attempt is made
		// again. An answer that did arrive is recorded, so a receiver
		// that took it is not sent it twice.
		return
	}
	a := Attempt{At: req.Time, StatusCode: res.StatusCode, Latency: res.Latency, Succeeded: res.Err == nil}
	if res.Err != nil {
		a.Err = res.Err.Error()
		if res.Retry {
			next := time.Now().UTC().Add(webhook.Backoff(c.Attempts+1, d.opts.RetryBase, d.maxDelay()))
			if next.Before(c.RetryUntil) {
				a.Next = next
			}
		}
	}
	if err := d.store.Record(context.WithoutCancel(ctx), d.owner, c.ID, a); err != nil {
		d.opts.Logger.Warn("notifications: recording an attempt failed", "delivery", c.ID, "err", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
