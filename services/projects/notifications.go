package projects

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/slug"
	"github.com/slipwayhq/slipway/pkg/webhook"
)

// hostCheckTimeout bounds resolving a URL's host when an integration or
// a webhook is saved, so a slow resolver answers the client in time.
const hostCheckTimeout = 5 * time.Second

// notificationsServer implements NotificationsService: thin handlers over
// the NotificationStore. Deliveries themselves are the consumer's and the
// dispatcher's (deliveries.go).
type notificationsServer struct {
	projectsv1.UnimplementedNotificationsServiceServer
	store   NotificationStore
	cursors *paging.Cursors
	// rule says which hosts deliveries may go to; URLs are checked
	// against it when saved (and every connection again when sent).
	rule *netguard.Rule
	// retryFor is how long a delivery sent again by hand is retried.
	retryFor time.Duration
	// wake tells the dispatcher a delivery is due (may be nil).
	wake func()
	now  func() time.Time
}

// NotificationOptions configure NewNotificationsServer.
type NotificationOptions struct {
	// Rule is the address rule of deliveries; nil: public addresses only.
	Rule *netguard.Rule
	// RetryFor is how long a retried delivery is retried (default 24h).
	RetryFor time.Duration
	// Wake, when set, is called after a delivery became due.
	Wake func()
	// Cursors seal list cursors; nil: ephemeral (tests).
	Cursors *paging.Cursors
}

// NewNotificationsServer returns the NotificationsService over store.
func NewNotificationsServer(store NotificationStore, opts NotificationOptions) projectsv1.NotificationsServiceServer {
	if opts.Cursors == nil {
		opts.Cursors = paging.EphemeralCursors()
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 24 * time.Hour
	}
	return &notificationsServer{store: store, cursors: opts.Cursors, rule: opts.Rule, retryFor: opts.RetryFor, wake: opts.Wake, now: now}
}

// ---- notification integrations

// ListNotificationIntegrations implements NotificationsService.
func (s *notificationsServer) ListNotificationIntegrations(ctx context.Context, req *projectsv1.ListNotificationIntegrationsRequest) (*projectsv1.ListNotificationIntegrationsResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	scope := "notifications/" + grant.GetTeamId()
	page, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListIntegrations(ctx, grant.GetTeamId(), page)
	if err != nil {
		return nil, err
	}
	resp := &projectsv1.ListNotificationIntegrationsResponse{NotificationIntegrations: make([]*projectsv1.NotificationIntegration, 0, len(list))}
	last := ""
	for _, in := range list {
		resp.NotificationIntegrations = append(resp.NotificationIntegrations, integrationOf(in))
		last = in.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateNotificationIntegration implements NotificationsService.
func (s *notificationsServer) CreateNotificationIntegration(ctx context.Context, req *projectsv1.CreateNotificationIntegrationRequest) (*projectsv1.CreateNotificationIntegrationResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	id := slug.Make(req.GetName())
	if len(id) < 3 {
		return nil, apierr.InvalidField("name", "must contain at least 3 letters or digits")
	}
	if req.Secret != nil && req.GetType() != webhook.RawWebhook {
		return nil, apierr.InvalidField("secret", "only RAW_WEBHOOK integrations take a secret; "+req.GetType()+" sends to the platform's own URL")
	}
	evs, err := triggersFrom(req.GetEvents())
	if err != nil {
		return nil, err
	}
	if err := s.checkURL(ctx, "webhook", req.GetWebhook()); err != nil {
		return nil, err
	}
	now := s.now()
	in := Integration{
		TeamID: grant.GetTeamId(), ID: id, Name: req.GetName(), Type: req.GetType(), Webhook: req.GetWebhook(), Secret: req.GetSecret(),
		Restricted: req.GetRestricted(), Projects: normalizeIDs(req.GetProjects()), Restrictions: restrictionsJSON(req.GetRestrictions()),
		Events: evs, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.store.CreateIntegration(ctx, in); err != nil {
		return nil, apierr.FromStore(err, "notification integration", id)
	}
	return &projectsv1.CreateNotificationIntegrationResponse{NotificationIntegration: integrationOf(in)}, nil
}

// GetNotificationIntegration implements NotificationsService.
func (s *notificationsServer) GetNotificationIntegration(ctx context.Context, req *projectsv1.GetNotificationIntegrationRequest) (*projectsv1.GetNotificationIntegrationResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	in, err := s.store.GetIntegration(ctx, grant.GetTeamId(), req.GetNotificationId())
	if err != nil {
		return nil, apierr.FromStore(err, "notification integration", req.GetNotificationId())
	}
	return &projectsv1.GetNotificationIntegrationResponse{NotificationIntegration: integrationOf(in)}, nil
}

// UpdateNotificationIntegration implements NotificationsService.
func (s *notificationsServer) UpdateNotificationIntegration(ctx context.Context, req *projectsv1.UpdateNotificationIntegrationRequest) (*projectsv1.UpdateNotificationIntegrationResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	var evs []string
	if len(req.GetEvents()) > 0 {
		if evs, err = triggersFrom(req.GetEvents()); err != nil {
			return nil, err
		}
	}
	if req.Webhook != nil {
		if err := s.checkURL(ctx, "webhook", req.GetWebhook()); err != nil {
			return nil, err
		}
	}
	in, err := s.store.UpdateIntegration(ctx, grant.GetTeamId(), req.GetNotificationId(), func(in *Integration) error {
		if req.Secret != nil && in.Type != webhook.RawWebhook {
			return apierr.InvalidField("secret", "only RAW_WEBHOOK integrations take a secret; "+in.Type+" sends to the platform's own URL")
		}
		if req.Name != nil {
			in.Name = req.GetName()
		}
		if req.Webhook != nil {
			in.Webhook = req.GetWebhook()
		}
		if req.Secret != nil {
			in.Secret = req.GetSecret()
		}
		if req.Restricted != nil {
			in.Restricted = req.GetRestricted()
		}
		if req.Projects != nil {
			in.Projects = normalizeIDs(req.GetProjects())
		}
		if req.Restrictions != nil {
			in.Restrictions = restrictionsJSON(req.GetRestrictions())
		}
		if evs != nil {
			in.Events = evs
		}
		in.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return nil, apierr.FromStore(err, "notification integration", req.GetNotificationId())
	}
	return &projectsv1.UpdateNotificationIntegrationResponse{NotificationIntegration: integrationOf(in)}, nil
}

// DeleteNotificationIntegration implements NotificationsService.
func (s *notificationsServer) DeleteNotificationIntegration(ctx context.Context, req *projectsv1.DeleteNotificationIntegrationRequest) (*projectsv1.DeleteNotificationIntegrationResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteIntegration(ctx, grant.GetTeamId(), req.GetNotificationId()); err != nil {
		return nil, apierr.FromStore(err, "notification integration", req.GetNotificationId())
	}
	return &projectsv1.DeleteNotificationIntegrationResponse{}, nil
}

// ListNotificationDeliveries implements NotificationsService.
func (s *notificationsServer) ListNotificationDeliveries(ctx context.Context, req *projectsv1.ListNotificationDeliveriesRequest) (*projectsv1.ListNotificationDeliveriesResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetIntegration(ctx, grant.GetTeamId(), req.GetNotificationId()); err != nil {
		return nil, apierr.FromStore(err, "notification integration", req.GetNotificationId())
	}
	list, page, err := s.deliveries(ctx, grant.GetTeamId(), TargetIntegration, req.GetNotificationId(), req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	return &projectsv1.ListNotificationDeliveriesResponse{Deliveries: list, Pagination: page}, nil
}

// RetryNotificationDelivery implements NotificationsService.
func (s *notificationsServer) RetryNotificationDelivery(ctx context.Context, req *projectsv1.RetryNotificationDeliveryRequest) (*projectsv1.RetryNotificationDeliveryResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.retry(ctx, grant.GetTeamId(), TargetIntegration, req.GetNotificationId(), req.GetDeliveryId())
	if err != nil {
		return nil, err
	}
	return &projectsv1.RetryNotificationDeliveryResponse{Delivery: d}, nil
}

// ---- "your-app" webhooks

// ListWebhooks implements NotificationsService.
func (s *notificationsServer) ListWebhooks(ctx context.Context, req *projectsv1.ListWebhooksRequest) (*projectsv1.ListWebhooksResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	scope := "webhooks/" + grant.GetTeamId()
	page, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListWebhooks(ctx, grant.GetTeamId(), page)
	if err != nil {
		return nil, err
	}
	resp := &projectsv1.ListWebhooksResponse{Webhooks: make([]*projectsv1.Webhook, 0, len(list))}
	last := ""
	for _, w := range list {
		resp.Webhooks = append(resp.Webhooks, webhookOf(w, false))
		last = w.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateWebhook implements NotificationsService.
func (s *notificationsServer) CreateWebhook(ctx context.Context, req *projectsv1.CreateWebhookRequest) (*projectsv1.CreateWebhookResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	names := normalizeIDs(req.GetEvents())
	for _, name := range names {
		if !knownWebhookEvent(name) {
			return nil, apierr.InvalidField("events", fmt.Sprintf("unknown event %q; the events are %s, or * for all", name, strings.Join(WebhookEvents, ", ")))
		}
	}
	secret := req.GetSecret()
	if secret == "" {
		secret = newWebhookSecret()
	} else if len(secret) < 16 {
		return nil, apierr.InvalidField("secret", "must have at least 16 characters (or leave it out to have one generated)")
	} else if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		// Standard Webhooks libraries decode what follows the prefix.
		if key, err := base64.StdEncoding.DecodeString(rest); err != nil || len(key) < 16 {
			return nil, apierr.InvalidField("secret", "a whsec_ secret is whsec_ and at least 16 bytes in base64")
		}
	}
	if err := s.checkURL(ctx, "url", req.GetUrl()); err != nil {
		return nil, err
	}
	w := Webhook{TeamID: grant.GetTeamId(), ID: newWebhookID(), URL: req.GetUrl(), Events: names, Secret: secret, CreatedAt: s.now()}
	if err := s.store.CreateWebhook(ctx, w); err != nil {
		return nil, apierr.FromStore(err, "webhook", w.ID)
	}
	return &projectsv1.CreateWebhookResponse{Webhook: webhookOf(w, true)}, nil
}

// GetWebhook implements NotificationsService.
func (s *notificationsServer) GetWebhook(ctx context.Context, req *projectsv1.GetWebhookRequest) (*projectsv1.GetWebhookResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, grant.GetTeamId(), req.GetWebhookId())
	if err != nil {
		return nil, apierr.FromStore(err, "webhook", req.GetWebhookId())
	}
	return &projectsv1.GetWebhookResponse{Webhook: webhookOf(w, false)}, nil
}

// DeleteWebhook implements NotificationsService.
func (s *notificationsServer) DeleteWebhook(ctx context.Context, req *projectsv1.DeleteWebhookRequest) (*projectsv1.DeleteWebhookResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteWebhook(ctx, grant.GetTeamId(), req.GetWebhookId()); err != nil {
		return nil, apierr.FromStore(err, "webhook", req.GetWebhookId())
	}
	return &projectsv1.DeleteWebhookResponse{}, nil
}

// ListWebhookDeliveries implements NotificationsService.
func (s *notificationsServer) ListWebhookDeliveries(ctx context.Context, req *projectsv1.ListWebhookDeliveriesRequest) (*projectsv1.ListWebhookDeliveriesResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetWebhook(ctx, grant.GetTeamId(), req.GetWebhookId()); err != nil {
		return nil, apierr.FromStore(err, "webhook", req.GetWebhookId())
	}
	list, page, err := s.deliveries(ctx, grant.GetTeamId(), TargetWebhook, req.GetWebhookId(), req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	return &projectsv1.ListWebhookDeliveriesResponse{Deliveries: list, Pagination: page}, nil
}

// RetryWebhookDelivery implements NotificationsService.
func (s *notificationsServer) RetryWebhookDelivery(ctx context.Context, req *projectsv1.RetryWebhookDeliveryRequest) (*projectsv1.RetryWebhookDeliveryResponse, error) {
	grant, err := manageGrant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.retry(ctx, grant.GetTeamId(), TargetWebhook, req.GetWebhookId(), req.GetDeliveryId())
	if err != nil {
		return nil, err
	}
	return &projectsv1.RetryWebhookDeliveryResponse{Delivery: d}, nil
}

// ---- shared

// deliveries is a page of a target's history.
func (s *notificationsServer) deliveries(ctx context.Context, team, kind, target string, perPage, pageNo int32, cursor string) ([]*projectsv1.Delivery, *apiv1.Pagination, error) {
	scope := "deliveries/" + team + "/" + kind + "/" + target
	page, err := s.cursors.Parse(scope, perPage, pageNo, cursor)
	if err != nil {
		return nil, nil, err
	}
	list, more, total, err := s.store.ListDeliveries(ctx, team, kind, target, page)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*projectsv1.Delivery, 0, len(list))
	last := ""
	for _, d := range list {
		out = append(out, deliveryOf(d))
		last = d.ID
	}
	return out, s.cursors.Result(scope, len(list), more, last, total), nil
}

// retry sends a failed delivery of a target again.
func (s *notificationsServer) retry(ctx context.Context, team, kind, target, id string) (*projectsv1.Delivery, error) {
	now := s.now()
	d, err := s.store.RetryDelivery(ctx, team, kind, target, id, now, now.Add(s.retryFor))
	if errors.Is(err, ErrNotFailed) {
		return nil, apierr.Conflict(apierr.ReasonDeliveryNotFailed, "delivery %q is %s; only a failed delivery can be sent again", id, d.Status)
	}
	if err != nil {
		return nil, apierr.FromStore(err, "delivery", id)
	}
	if s.wake != nil {
		s.wake()
	}
	return deliveryOf(d), nil
}

// checkURL accepts an absolute http or https URL whose host the address
// rule allows (every address it resolves to). The rule's refusal is
// meant for users; a failed lookup says only that the host was not found.
func (s *notificationsServer) checkURL(ctx context.Context, field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return apierr.InvalidField(field, "must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return apierr.InvalidField(field, "must not carry credentials (user:password@); use a secret to authenticate deliveries")
	}
	ctx, cancel := context.WithTimeout(ctx, hostCheckTimeout)
	defer cancel()
	if err := s.rule.CheckHost(ctx, u.Hostname()); err != nil {
		if errors.Is(err, netguard.ErrRefused) {
			return apierr.InvalidField(field, err.Error())
		}
		return apierr.InvalidField(field, fmt.Sprintf("the host %q could not be resolved", u.Hostname()))
	}
	return nil
}

// manageGrant is the caller's grant for a change to the team's
// notifications. Integrations and webhooks are team-wide (they receive
// every project's events), so credentials restricted to some projects may
// not change them.
func manageGrant(ctx context.Context) (*authv1.TeamGrant, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	if authz.Restricted(grant) {
		return nil, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonProjectRestricted,
			Message: "notification integrations and webhooks are team-wide; these credentials are restricted to some projects"}
	}
	return grant, nil
}

// triggersFrom turns an events map into the sorted list of selected keys,
// refusing keys Northflank does not have.
func triggersFrom(m map[string]bool) ([]string, error) {
	out := []string{}
	for key, on := range m {
		if !knownTrigger(key) {
			return nil, apierr.InvalidField("events", fmt.Sprintf("unknown event key %q; keys are Northflank's trigger:<category>:<event> names", key))
		}
		if on {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out, nil
}

// normalizeIDs sorts and de-duplicates a list.
func normalizeIDs(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

func restrictionsJSON(r *projectsv1.NotificationRestrictions) string {
	if r == nil {
		return "{}"
	}
	b, err := protojson.Marshal(r)
	if err != nil {
		return "{}"
	}
	return string(b)
}

func integrationOf(in Integration) *projectsv1.NotificationIntegration {
	evs := make(map[string]bool, len(in.Events))
	for _, key := range in.Events {
		evs[key] = true
	}
	restrictions := &projectsv1.NotificationRestrictions{}
	_ = protojson.Unmarshal([]byte(restrictionsText(in.Restrictions)), restrictions) // written by restrictionsJSON
	status := &projectsv1.NotificationStatus{NumberOfFailedRequests: int32(min(in.FailedRequests, 1<<31-1))}
	if !in.FirstFailedAt.IsZero() {
		status.TimeOfFirstFailedRequest = timestamppb.New(in.FirstFailedAt)
	}
	return &projectsv1.NotificationIntegration{
		Name: in.Name, Id: in.ID, Type: in.Type, Webhook: in.Webhook,
		CreatedAt: timestamppb.New(in.CreatedAt), UpdatedAt: timestamppb.New(in.UpdatedAt),
		Status: status, Restricted: in.Restricted, Projects: nonNil(in.Projects), Restrictions: restrictions, Events: evs,
	}
}

func webhookOf(w Webhook, withSecret bool) *projectsv1.Webhook {
	out := &projectsv1.Webhook{Id: w.ID, Url: w.URL, Events: nonNil(w.Events), CreatedAt: timestamppb.New(w.CreatedAt)}
	if withSecret {
		out.Secret = &w.Secret
	}
	return out
}

func deliveryOf(d Delivery) *projectsv1.Delivery {
	out := &projectsv1.Delivery{
		Id: d.ID, EventId: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: int32(d.Attempts),
		// The latency is bounded by the attempt timeout: it fits.
		LastStatusCode: int32(d.LastStatusCode), LastLatencyMs: int32(d.LastLatency.Milliseconds()), LastError: d.LastError,
		CreatedAt: timestamppb.New(d.CreatedAt),
	}
	if !d.LastAttemptAt.IsZero() {
		out.LastAttemptAt = timestamppb.New(d.LastAttemptAt)
	}
	if d.Status == DeliveryPending {
		out.NextAttemptAt = timestamppb.New(d.NextAttemptAt)
	}
	return out
}

// newWebhookID is a random readable webhook id, "wh-" and 16 lowercase
// letters and digits.
func newWebhookID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "wh-" + string(b)
}

// newWebhookSecret is a Standard Webhooks secret: "whsec_" and 32 random
// bytes in base64.
func newWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
