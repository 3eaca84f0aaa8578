package projects

import (
	"context"
	"errors"
	"time"

	"github.com/slipwayhq/slipway/pkg/paging"
)

// Integration is a Northflank notification integration: where (Webhook)
// and for which events (Events, a set of "trigger:<category>:<event>"
// keys) a team's notifications are sent, in which format (Type).
type Integration struct {
	TeamID string
	// ID is the slug of the name, unique within the team.
	ID      string
	Name    string
	Type    string
	Webhook string
	// Secret is RAW_WEBHOOK's token and signing secret ("" for none). The
	// store seals it at rest; the API never returns it.
	Secret string
	// Restricted limits deliveries to the events of Projects.
	Restricted bool
	Projects   []string
	// Restrictions is Northflank's tag restriction, JSON as given (Slipway
	// has no tags yet, so it is stored and shown, not applied).
	Restrictions string
	// Events are the selected keys (those set to true).
	Events []string
	// FailedRequests and FirstFailedAt are the failed attempts since the
	// last successful one (the status Northflank shows).
	FailedRequests int64
	FirstFailedAt  time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Webhook is a "your-app" API webhook: Events are event names
// ("deployment.completed") or "*".
type Webhook struct {
	TeamID    string
	ID        string
	URL       string
	Events    []string
	Secret    string
	CreatedAt time.Time
}

// The kinds of a delivery's target.
const (
	TargetIntegration = "integration"
	TargetWebhook     = "webhook"
)

// The statuses of a delivery.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Delivery is one event for one integration or webhook, with its body
// rendered once (every attempt sends the same bytes) and the outcome of
// its latest attempt.
type Delivery struct {
	// ID is the delivery's id: the webhook-id header of every attempt.
	ID         string
	TeamID     string
	TargetKind string
	TargetID   string
	EventID    string
	EventType  string
	Body       []byte
	Status     string
	Attempts   int
	// NextAttemptAt is when a pending delivery is due; RetryUntil is when
	// it stops being retried.
	NextAttemptAt  time.Time
	RetryUntil     time.Time
	LastStatusCode int
	LastLatency    time.Duration
	LastError      string
	LastAttemptAt  time.Time
	CreatedAt      time.Time
}

// Claim is a delivery claimed for one attempt, with what sending it needs
// from its target as the target is now.
type Claim struct {
	Delivery
	// URL, Secret, Type (an integration's type; "" for a webhook) and
	// Name (an integration's name) of the target.
	URL, Secret, Type, Name string
}

// Attempt is the outcome of one attempt.
type Attempt struct {
	At         time.Time
	StatusCode int
	Latency    time.Duration
	// Err is why it failed ("" on success).
	Err string
	// Succeeded ends the delivery; otherwise Next, when not zero, is when
	// to try again, and a zero Next marks the delivery failed.
	Succeeded bool
	Next      time.Time
}

// ErrNotFailed: retrying a delivery that has not failed (the store's
// other errors are the shared ErrNotFound and ErrAlreadyExists).
var ErrNotFailed = errors.New("delivery has not failed")

// Subscribers are a team's integrations and webhooks, what the consumer
// matches an event against.
type Subscribers struct {
	Integrations []Integration
	Webhooks     []Webhook
}

// NotificationStore persists integrations, webhooks and their deliveries,
// each within its team.
type NotificationStore interface {
	// CreateIntegration inserts in; ErrAlreadyExists when its id is taken.
	CreateIntegration(ctx context.Context, in Integration) error
	// GetIntegration returns an integration or ErrNotFound.
	GetIntegration(ctx context.Context, team, id string) (Integration, error)
	// ListIntegrations returns integrations ordered by id, whether more
	// follow, and how many the team has in all.
	ListIntegrations(ctx context.Context, team string, page paging.Page) ([]Integration, bool, int, error)
	// UpdateIntegration reads the integration, lets mutate change it and
	// writes it back in one transaction; ErrNotFound or mutate's error.
	UpdateIntegration(ctx context.Context, team, id string, mutate func(*Integration) error) (Integration, error)
	// DeleteIntegration removes an integration and its deliveries;
	// ErrNotFound when there is none.
	DeleteIntegration(ctx context.Context, team, id string) error

	// CreateWebhook inserts w; ErrAlreadyExists when its id is taken.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns a webhook or ErrNotFound.
	GetWebhook(ctx context.Context, team, id string) (Webhook, error)
	// ListWebhooks returns webhooks ordered by id, whether more follow,
	// and how many the team has in all.
	ListWebhooks(ctx context.Context, team string, page paging.Page) ([]Webhook, bool, int, error)
	// DeleteWebhook removes a webhook and its deliveries; ErrNotFound when
	// there is none.
	DeleteWebhook(ctx context.Context, team, id string) error

	// Enqueue is the consumer's step, in one transaction: it records that
	// consumer processed eventID (events.MarkProcessed) and, the first
	// time only, passes the team's subscribers (without their secrets,
	// which only sending needs: Claim reads them) to deliveries and inserts
	// the deliveries it returns. It reports how many were inserted.
	Enqueue(ctx context.Context, consumer, eventID, team string, deliveries func(Subscribers) ([]Delivery, error)) (int, error)
	// ListDeliveries returns a target's deliveries, newest first, and
	// whether more follow (page.After is a delivery id), and how many the
	// target has in all.
	ListDeliveries(ctx context.Context, team, kind, target string, page paging.Page) ([]Delivery, bool, int, error)
	// RetryDelivery makes a failed delivery pending again, due at now and
	// retried until retryUntil. ErrNotFound when the target has no such
	// delivery, ErrNotFailed when it has not failed.
	RetryDelivery(ctx context.Context, team, kind, target, id string, now, retryUntil time.Time) (Delivery, error)
	// Claim leases up to limit pending deliveries due at now to owner
	// until leaseUntil, oldest due first; a delivery leased to another
	// owner whose lease has not run out is never claimed, so two replicas
	// never make the same attempt.
	Claim(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]Claim, error)
	// Record stores the outcome of the attempt owner made on delivery id
	// and releases the lease; an owner that lost its lease records
	// nothing (ErrNotFound). It also keeps the integration's failure
	// count: reset by a success, increased by a failure.
	Record(ctx context.Context, owner, id string, a Attempt) error
	// NextDue returns when the earliest pending delivery is due (or its
	// lease ends), and false when none is pending.
	NextDue(ctx context.Context) (time.Time, bool, error)
	// Prune deletes concluded (succeeded or failed) deliveries created
	// before before and returns how many; pending ones stay.
	Prune(ctx context.Context, before time.Time) (int, error)
}
