package projects_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/webhook"
	"github.com/slipwayhq/slipway/services/projects"
)

// notifyStack is the notifications service as `slipway serve` wires it:
// real gRPC, a real database, a real NATS JetStream, the consumer and the
// dispatcher, sending to receivers on 127.0.0.1 (which its rule allows).
type notifyStack struct {
	client projectsv1.NotificationsServiceClient
	js     jetstream.JetStream
}

// Retry settings of the stack: short, so back-off shows within a test.
const (
	testRetryBase = 200 * time.Millisecond
	testRetryFor  = 3 * time.Second
)

func newNotifyStack(t *testing.T, engine ...sqldb.Dialect) *notifyStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := sqldb.SQLite
	if len(engine) > 0 {
		e = engine[0]
	}
	db := openDB(t, e)
	nats := testenv.StartNATS(t)
	nc, err := events.Connect(nats.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	rule, err := netguard.Parse([]string{"127.0.0.1"}, []string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	store := projects.NewNotificationSQLStore(db, notificationBox(t))
	d := projects.NewDispatcher(store, projects.DispatcherOptions{
		Sender:  webhook.NewSender(webhook.SenderOptions{Rule: rule, Timeout: 2 * time.Second}),
		Timeout: 2 * time.Second, Workers: 4, RetryBase: testRetryBase, RetryFor: testRetryFor, Poll: 200 * time.Millisecond,
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	stop, err := events.Consume(ctx, js, events.ConsumerConfig{Durable: projects.NotificationConsumer, Subjects: projects.NotificationSubjects()},
		projects.NotificationHandler(store, testRetryFor, d.Wake, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); cancel(); <-done })
	conn := rpctest.Serve(t, rpcserver.Options{Authorizer: authz.New(tokens, "internal")}, func(s *grpc.Server) {
		projectsv1.RegisterNotificationsServiceServer(s, projects.NewNotificationsServer(store, projects.NotificationOptions{Rule: rule, RetryFor: testRetryFor, Wake: d.Wake}))
	}, grpc.WithUnaryInterceptor(asAcmeAdmin))
	return &notifyStack{client: projectsv1.NewNotificationsServiceClient(conn), js: js}
}

// publish puts a lifecycle event on the stream as a service's relay does.
func (s *notifyStack) publish(t *testing.T, service, resource, verb string, data map[string]any) events.Event {
	t.Helper()
	ev, err := events.New(service, resource, verb, "x", data)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ev)
	if _, err := s.js.Publish(context.Background(), ev.NATSSubject(), raw, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
	return ev
}

// received is one request a receiver got.
type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is an HTTP server on 127.0.0.1 that records requests and
// answers with status(n) for the n-th (from 1).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	more chan struct{}
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{more: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{at: time.Now(), header: req.Header.Clone(), body: body})
		n := len(r.got)
		r.mu.Unlock()
		r.more <- struct{}{}
		w.WriteHeader(status(n))
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the first n requests, failing after 15s.
func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := append([]received(nil), r.got...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", len(r.got), n)
		}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func ok(int) int { return http.StatusOK }

func TestNotificationsAPI(t *testing.T) {
	s := newNotifyStack(t)
	ctx := context.Background()
	recv := newReceiver(t, ok)

	// Create: the id is the slug of the name; the secret is never shown.
	created, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{
		Name: "Build Alerts", Type: "RAW_WEBHOOK", Webhook: recv.URL + "/hook", Secret: proto.String("top-secret-token"),
		Restricted: true, Projects: []string{"web", "api", "web"},
		Restrictions: &projectsv1.NotificationRestrictions{Tags: &projectsv1.NotificationTagRestriction{Enabled: true, Items: []string{"prod"}, MatchCondition: "or"}},
		Events:       map[string]bool{"trigger:build:success": true, "trigger:build:failure": false, "trigger:infrastructure:byoc:volume:attach": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := created.GetNotificationIntegration()
	if in.GetId() != "build-alerts" || in.GetType() != "RAW_WEBHOOK" || !in.GetRestricted() || strings.Join(in.GetProjects(), ",") != "api,web" ||
		len(in.GetEvents()) != 2 || !in.GetEvents()["trigger:build:success"] || in.GetRestrictions().GetTags().GetItems()[0] != "prod" ||
		in.GetStatus() == nil || in.GetStatus().GetNumberOfFailedRequests() != 0 {
		t.Fatalf("created %v", in)
	}
	if strings.Contains(in.String(), "top-secret-token") {
		t.Fatal("the create response shows the secret")
	}
	if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{
		Name: "build  ALERTS", Type: "SLACK", Webhook: recv.URL, Events: map[string]bool{"trigger:build:start": true}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create of build-alerts: %v, want AlreadyExists", err)
	}

	// Update is partial; a new secret is accepted on RAW_WEBHOOK.
	updated, err := s.client.UpdateNotificationIntegration(ctx, &projectsv1.UpdateNotificationIntegrationRequest{
		NotificationId: "build-alerts", Name: proto.String("Build Alerts 2"), Secret: proto.String("another-token"),
		Events: map[string]bool{"trigger:job-run:failure": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := updated.GetNotificationIntegration(); u.GetName() != "Build Alerts 2" || u.GetId() != "build-alerts" || u.GetWebhook() != recv.URL+"/hook" ||
		len(u.GetEvents()) != 1 || !u.GetEvents()["trigger:job-run:failure"] || !u.GetRestricted() {
		t.Fatalf("updated %v", u)
	}
	got, err := s.client.GetNotificationIntegration(ctx, &projectsv1.GetNotificationIntegrationRequest{NotificationId: "build-alerts"})
	if err != nil || got.GetNotificationIntegration().GetName() != "Build Alerts 2" {
		t.Fatalf("get = %v, %v", got, err)
	}
	list, err := s.client.ListNotificationIntegrations(ctx, &projectsv1.ListNotificationIntegrationsRequest{})
	if err != nil || len(list.GetNotificationIntegrations()) != 1 || list.GetPagination().GetCount() != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}

	// Other teams see nothing; viewers read but do not manage; credentials
	// restricted to projects manage nothing team-wide.
	if _, err := s.client.GetNotificationIntegration(as("globex"), &projectsv1.GetNotificationIntegrationRequest{NotificationId: "build-alerts"}); status.Code(err) != codes.NotFound {
		t.Fatalf("other team's get: %v, want NotFound", err)
	}
	if _, err := s.client.GetNotificationIntegration(as("acme-viewer"), &projectsv1.GetNotificationIntegrationRequest{NotificationId: "build-alerts"}); err != nil {
		t.Fatalf("viewer's get: %v", err)
	}
	if _, err := s.client.DeleteNotificationIntegration(as("acme-viewer"), &projectsv1.DeleteNotificationIntegrationRequest{NotificationId: "build-alerts"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer's delete: %v, want PermissionDenied", err)
	}
	if _, err := s.client.CreateWebhook(as("acme-only"), &projectsv1.CreateWebhookRequest{Url: recv.URL, Events: []string{"*"}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("project-restricted create: %v, want PermissionDenied", err)
	}

	// Webhooks: a generated whsec_ secret, shown once.
	wh, err := s.client.CreateWebhook(ctx, &projectsv1.CreateWebhookRequest{Url: recv.URL + "/app", Events: []string{"deployment.completed", "project.created"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(wh.GetWebhook().GetSecret(), "whsec_") || !strings.HasPrefix(wh.GetWebhook().GetId(), "wh-") {
		t.Fatalf("created webhook %v", wh.GetWebhook())
	}
	gotWh, err := s.client.GetWebhook(ctx, &projectsv1.GetWebhookRequest{WebhookId: wh.GetWebhook().GetId()})
	if err != nil || gotWh.GetWebhook().Secret != nil || gotWh.GetWebhook().GetUrl() != recv.URL+"/app" {
		t.Fatalf("get webhook = %v, %v (no secret)", gotWh, err)
	}
	whList, err := s.client.ListWebhooks(ctx, &projectsv1.ListWebhooksRequest{})
	if err != nil || len(whList.GetWebhooks()) != 1 || whList.GetWebhooks()[0].Secret != nil {
		t.Fatalf("list webhooks = %v, %v", whList, err)
	}
	if _, err := s.client.DeleteWebhook(ctx, &projectsv1.DeleteWebhookRequest{WebhookId: wh.GetWebhook().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.GetWebhook(ctx, &projectsv1.GetWebhookRequest{WebhookId: wh.GetWebhook().GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("get deleted webhook: %v", err)
	}
	if _, err := s.client.DeleteNotificationIntegration(ctx, &projectsv1.DeleteNotificationIntegrationRequest{NotificationId: "build-alerts"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.DeleteNotificationIntegration(ctx, &projectsv1.DeleteNotificationIntegrationRequest{NotificationId: "build-alerts"}); status.Code(err) != codes.NotFound {
		t.Fatalf("second delete: %v, want NotFound", err)
	}
}

// TestNotificationsBadInput: each bad request is InvalidArgument naming
// the field and saying what is wrong.
func TestNotificationsBadInput(t *testing.T) {
	s := newNotifyStack(t)
	ctx := context.Background()
	good := func() *projectsv1.CreateNotificationIntegrationRequest {
		return &projectsv1.CreateNotificationIntegrationRequest{Name: "Alerts", Type: "RAW_WEBHOOK", Webhook: "http://127.0.0.1:9/x",
			Events: map[string]bool{"trigger:build:start": true}}
	}
	for name, tc := range map[string]struct {
		edit  func(*projectsv1.CreateNotificationIntegrationRequest)
		field string
		says  string
	}{
		"ftp url":      {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "ftp://127.0.0.1/x" }, "webhook", "http"},
		"relative url": {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "/hooks" }, "webhook", "http"},
		"no host":      {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "http://" }, "webhook", "http"},
		"not a url":    {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "not a url" }, "webhook", "http"},
		"credentials":  {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "http://u:p@127.0.0.1/x" }, "webhook", "credentials"},
		"loopback v6":  {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "http://[::1]:8080/x" }, "webhook", "not allow"},
		"private":      {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "https://10.1.2.3/x" }, "webhook", "not allow"},
		"metadata":     {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "http://169.254.169.254/latest" }, "webhook", "not allow"},
		"denied":       {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Webhook = "https://192.0.2.7/x" }, "webhook", "not allow"},
		"unknown key":  {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Events["trigger:build:exploded"] = true }, "events", "trigger:build:exploded"},
		"key sans trigger": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Events = map[string]bool{"build:start": true}
		}, "events", "build:start"},
		"secret on slack": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Type, r.Secret = "SLACK", proto.String("abc")
		}, "secret", "RAW_WEBHOOK"},
		"unknown type": {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Type = "EMAIL" }, "type", ""},
		"long name":    {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Name = strings.Repeat("a", 65) }, "name", ""},
		"short name":   {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Name = "a!" }, "name", ""},
		"long url": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Webhook = "http://127.0.0.1/" + strings.Repeat("a", 2048)
		}, "webhook", ""},
		"long secret": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Secret = proto.String(strings.Repeat("s", 257))
		}, "secret", ""},
		"empty secret": {func(r *projectsv1.CreateNotificationIntegrationRequest) { r.Secret = proto.String("") }, "secret", ""},
		"long project": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Projects = []string{strings.Repeat("p", 65)}
		}, "projects", ""},
		"bad condition": {func(r *projectsv1.CreateNotificationIntegrationRequest) {
			r.Restrictions = &projectsv1.NotificationRestrictions{Tags: &projectsv1.NotificationTagRestriction{MatchCondition: "xor"}}
		}, "restrictions", ""},
	} {
		req := good()
		tc.edit(req)
		_, err := s.client.CreateNotificationIntegration(ctx, req)
		checkInvalid(t, name, err, tc.field, tc.says)
	}
	// The same rules on update, and the secret rule by the stored type.
	if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{Name: "Chat", Type: "DISCORD",
		Webhook: "http://127.0.0.1:9/discord", Events: map[string]bool{"trigger:build:failure": true}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.client.UpdateNotificationIntegration(ctx, &projectsv1.UpdateNotificationIntegrationRequest{NotificationId: "chat", Secret: proto.String("x")})
	checkInvalid(t, "update: secret on discord", err, "secret", "RAW_WEBHOOK")
	_, err = s.client.UpdateNotificationIntegration(ctx, &projectsv1.UpdateNotificationIntegrationRequest{NotificationId: "chat", Webhook: proto.String("http://10.0.0.1/")})
	checkInvalid(t, "update: private url", err, "webhook", "not allow")
	_, err = s.client.UpdateNotificationIntegration(ctx, &projectsv1.UpdateNotificationIntegrationRequest{NotificationId: "chat", Events: map[string]bool{"trigger:nope": true}})
	checkInvalid(t, "update: unknown key", err, "events", "trigger:nope")

	for name, tc := range map[string]struct {
		req   *projectsv1.CreateWebhookRequest
		field string
		says  string
	}{
		"unknown event":   {&projectsv1.CreateWebhookRequest{Url: "http://127.0.0.1:9/", Events: []string{"deployment.exploded"}}, "events", "deployment.exploded"},
		"no events":       {&projectsv1.CreateWebhookRequest{Url: "http://127.0.0.1:9/"}, "events", ""},
		"short secret":    {&projectsv1.CreateWebhookRequest{Url: "http://127.0.0.1:9/", Events: []string{"*"}, Secret: "short"}, "secret", "16"},
		"bad url":         {&projectsv1.CreateWebhookRequest{Url: "javascript:alert(1)", Events: []string{"*"}}, "url", "http"},
		"bad whsec":       {&projectsv1.CreateWebhookRequest{Url: "http://127.0.0.1:9/", Events: []string{"*"}, Secret: "whsec_not*base64*at*all"}, "secret", "base64"},
		"private address": {&projectsv1.CreateWebhookRequest{Url: "http://172.16.0.5:9/", Events: []string{"*"}}, "url", "not allow"},
	} {
		_, err := s.client.CreateWebhook(ctx, tc.req)
		checkInvalid(t, "webhook: "+name, err, tc.field, tc.says)
	}
}

func checkInvalid(t *testing.T, name string, err error, field, says string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("%s: %v, want InvalidArgument", name, err)
		return
	}
	v := fieldViolations(t, err)
	found := false
	for f, desc := range v {
		if (f == field || strings.HasPrefix(f, field+".") || strings.HasPrefix(f, field+"[")) && strings.Contains(desc, says) {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: violations %v do not name %q saying %q", name, v, field, says)
	}
}

// TestDeliveriesSigned: a build event reaches a RAW_WEBHOOK integration
// with Northflank's headers and a Standard Webhooks signature, and a
// "your-app" webhook in its payload shape, signed; an integration
// restricted to projects gets only theirs.
func TestDeliveriesSigned(t *testing.T) {
	s := newNotifyStack(t)
	ctx := context.Background()
	raw := newReceiver(t, ok)
	app := newReceiver(t, ok)
	if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{
		Name: "Raw", Type: "RAW_WEBHOOK", Webhook: raw.URL, Secret: proto.String("token-123"), Restricted: true, Projects: []string{"p1"},
		Events: map[string]bool{"trigger:build:success": true, "trigger:job-run:start": true},
	}); err != nil {
		t.Fatal(err)
	}
	created, err := s.client.CreateWebhook(ctx, &projectsv1.CreateWebhookRequest{Url: app.URL, Events: []string{"build.succeeded"}})
	if err != nil {
		t.Fatal(err)
	}
	appSecret := created.GetWebhook().GetSecret()

	other := s.publish(t, "builds", "build", "succeeded", map[string]any{"teamId": "acme", "projectId": "p2", "buildId": "b2", "serviceId": "web"})
	ev := s.publish(t, "builds", "build", "succeeded", map[string]any{"teamId": "acme", "projectId": "p1", "buildId": "b1", "serviceId": "web"})
	s.publish(t, "builds", "build", "failed", map[string]any{"teamId": "acme", "projectId": "p1", "buildId": "b3"})      // not selected
	s.publish(t, "builds", "build", "succeeded", map[string]any{"teamId": "globex", "projectId": "p1", "buildId": "b4"}) // another team

	got := app.wait(t, 2)
	r := raw.wait(t, 1)[0]
	h := r.header
	if h.Get("X-Northflank-Notification-Integration-Id") != "raw" || h.Get("X-Northflank-Notification-Integration-Name") != "Raw" ||
		h.Get("X-Northflank-Notification-Token") != "token-123" || h.Get("X-Northflank-Notification-Event-Id") != ev.ID ||
		h.Get("X-Northflank-Notification-Event-Type") != "build:success" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	if err := webhook.Verify(webhook.SigningKey("token-123"), h, r.body, time.Minute, time.Now()); err != nil {
		t.Fatalf("Standard Webhooks signature: %v", err)
	}
	var body struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Event != "build:success" || !strings.Contains(string(body.Data), `"buildId":"b1"`) {
		t.Fatalf("body %s (%v)", r.body, err)
	}
	ids := map[string]bool{}
	for _, a := range got {
		if err := webhook.Verify(webhook.SigningKey(appSecret), a.header, a.body, time.Minute, time.Now()); err != nil {
			t.Fatalf("webhook signature: %v", err)
		}
		if a.header.Get("X-Northflank-Notification-Token") != "" {
			t.Fatal("a your-app webhook got Northflank's token header")
		}
		var payload map[string]any
		if err := json.Unmarshal(a.body, &payload); err != nil {
			t.Fatal(err)
		}
		if payload["type"] != "build.succeeded" || payload["created_at"] == nil || payload["data"] == nil {
			t.Fatalf("payload %s", a.body)
		}
		ids[payload["id"].(string)] = true
	}
	if !ids[ev.ID] || !ids[other.ID] {
		t.Fatalf("webhook got events %v, want %s and %s", ids, ev.ID, other.ID)
	}
	time.Sleep(500 * time.Millisecond) // an extra delivery would show by now
	if raw.count() != 1 || app.count() != 2 {
		t.Fatalf("raw got %d requests (want 1: restricted to p1), app %d (want 2)", raw.count(), app.count())
	}
	list, err := s.client.ListNotificationDeliveries(ctx, &projectsv1.ListNotificationDeliveriesRequest{NotificationId: "raw"})
	if err != nil || len(list.GetDeliveries()) != 1 {
		t.Fatalf("history = %v, %v", list, err)
	}
	if d := list.GetDeliveries()[0]; d.GetStatus() != "succeeded" || d.GetAttempts() != 1 || d.GetLastStatusCode() != 200 || d.GetEventId() != ev.ID ||
		d.GetEventType() != "build:success" || d.GetId() != h.Get("webhook-id") {
		t.Fatalf("delivery %v (webhook-id %s)", d, h.Get("webhook-id"))
	}
}

// TestBackupEventsDelivered: an addon backup's started, completed, failed
// and aborted events fire Northflank's addon-backup:start, :success,
// :failure and :abort and the "your-app" webhook events
// addon.backup_started, _completed, _failed and _aborted, which a webhook
// may subscribe to.
func TestBackupEventsDelivered(t *testing.T) {
	s := newNotifyStack(t)
	ctx := context.Background()
	raw := newReceiver(t, ok)
	app := newReceiver(t, ok)
	if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{
		Name: "Backups", Type: "RAW_WEBHOOK", Webhook: raw.URL, Secret: proto.String("token-123"),
		Events: map[string]bool{"trigger:addon-backup:start": true, "trigger:addon-backup:success": true,
			"trigger:addon-backup:failure": true, "trigger:addon-backup:abort": true},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CreateWebhook(ctx, &projectsv1.CreateWebhookRequest{Url: app.URL,
		Events: []string{"addon.backup_started", "addon.backup_completed", "addon.backup_failed", "addon.backup_aborted"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{} // event id: the trigger key, the webhook event
	for verb, names := range map[string][2]string{
		"started":   {"addon-backup:start", "addon.backup_started"},
		"completed": {"addon-backup:success", "addon.backup_completed"},
		"failed":    {"addon-backup:failure", "addon.backup_failed"},
		"aborted":   {"addon-backup:abort", "addon.backup_aborted"},
	} {
		ev := s.publish(t, "addons", "backup", verb, map[string]any{"teamId": "acme", "projectId": "p1", "addonId": "db", "id": "b-" + verb})
		want[ev.ID] = names
	}
	got := map[string][2]string{}
	for _, r := range raw.wait(t, len(want)) {
		id := r.header.Get("X-Northflank-Notification-Event-Id")
		names := got[id]
		names[0] = r.header.Get("X-Northflank-Notification-Event-Type")
		got[id] = names
	}
	for _, r := range app.wait(t, len(want)) {
		var payload struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(r.body, &payload); err != nil {
			t.Fatal(err)
		}
		names := got[payload.ID]
		names[1] = payload.Type
		got[payload.ID] = names
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for id, names := range want {
		if got[id] != names {
			t.Fatalf("event %s delivered as %v, want %v (all: %v)", id, got[id], names, got)
		}
	}
}

// TestDeliveriesRetry: a receiver answering 500 twice then 200 gets the
// same delivery three times (same webhook-id and body) with growing gaps;
// one that always fails is marked failed at the end of the retry period,
// and a retry by hand sends it again.
func TestDeliveriesRetry(t *testing.T) {
	sqltest.EachEngine(t, testDeliveriesRetry)
}

func testDeliveriesRetry(t *testing.T, engine sqldb.Dialect) {
	s := newNotifyStack(t, engine)
	ctx := context.Background()
	flaky := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	var mu sync.Mutex
	down := true
	dead := newReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	flakyHook, err := s.client.CreateWebhook(ctx, &projectsv1.CreateWebhookRequest{Url: flaky.URL, Events: []string{"job_run.succeeded"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{Name: "Dead", Type: "SLACK",
		Webhook: dead.URL, Events: map[string]bool{"trigger:job-run:success": true}}); err != nil {
		t.Fatal(err)
	}
	s.publish(t, "jobs", "run", "succeeded", map[string]any{"teamId": "acme", "projectId": "p1", "jobId": "nightly", "runName": "nightly-abcde"})

	got := flaky.wait(t, 3)
	for _, r := range got[1:] {
		if r.header.Get("webhook-id") != got[0].header.Get("webhook-id") || string(r.body) != string(got[0].body) {
			t.Fatalf("attempts differ: %s %s vs %s %s", got[0].header.Get("webhook-id"), got[0].body, r.header.Get("webhook-id"), r.body)
		}
	}
	gap1, gap2 := got[1].at.Sub(got[0].at), got[2].at.Sub(got[1].at)
	// Back-off with jitter: the n-th retry waits within [base*2^(n-1)/2, base*2^(n-1)].
	if gap1 < testRetryBase/2 || gap2 < testRetryBase {
		t.Fatalf("gaps %v then %v: want at least %v then %v", gap1, gap2, testRetryBase/2, testRetryBase)
	}
	waitDelivery(t, func() (interface{ GetDeliveries() []*projectsv1.Delivery }, error) {
		return s.client.ListWebhookDeliveries(ctx, &projectsv1.ListWebhookDeliveriesRequest{WebhookId: flakyHook.GetWebhook().GetId()})
	}, func(d *projectsv1.Delivery) bool {
		return d.GetStatus() == "succeeded" && d.GetAttempts() == 3 && d.GetLastStatusCode() == 200
	})

	// The dead receiver: failed once the retry period is over.
	list := func() (interface{ GetDeliveries() []*projectsv1.Delivery }, error) {
		return s.client.ListNotificationDeliveries(ctx, &projectsv1.ListNotificationDeliveriesRequest{NotificationId: "dead"})
	}
	failed := waitDelivery(t, list, func(d *projectsv1.Delivery) bool { return d.GetStatus() == "failed" })
	if failed.GetAttempts() < 3 || failed.GetLastStatusCode() != 503 || failed.GetLastError() == "" {
		t.Fatalf("failed delivery %v", failed)
	}
	in, err := s.client.GetNotificationIntegration(ctx, &projectsv1.GetNotificationIntegrationRequest{NotificationId: "dead"})
	if err != nil || int(in.GetNotificationIntegration().GetStatus().GetNumberOfFailedRequests()) != int(failed.GetAttempts()) ||
		in.GetNotificationIntegration().GetStatus().GetTimeOfFirstFailedRequest() == nil {
		t.Fatalf("status after failures = %v, %v", in.GetNotificationIntegration().GetStatus(), err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	before := dead.count()
	if _, err := s.client.RetryNotificationDelivery(ctx, &projectsv1.RetryNotificationDeliveryRequest{NotificationId: "dead", DeliveryId: failed.GetId()}); err != nil {
		t.Fatal(err)
	}
	dead.wait(t, before+1)
	waitDelivery(t, list, func(d *projectsv1.Delivery) bool { return d.GetStatus() == "succeeded" && d.GetLastStatusCode() == 204 })
	_, err = s.client.RetryNotificationDelivery(ctx, &projectsv1.RetryNotificationDeliveryRequest{NotificationId: "dead", DeliveryId: failed.GetId()})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "succeeded") {
		t.Fatalf("retrying a succeeded delivery: %v, want FailedPrecondition", err)
	}
	if _, err := s.client.RetryNotificationDelivery(ctx, &projectsv1.RetryNotificationDeliveryRequest{NotificationId: "dead", DeliveryId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("retrying an unknown delivery: %v, want NotFound", err)
	}
	in, _ = s.client.GetNotificationIntegration(ctx, &projectsv1.GetNotificationIntegrationRequest{NotificationId: "dead"})
	if in.GetNotificationIntegration().GetStatus().GetNumberOfFailedRequests() != 0 {
		t.Fatalf("a success did not reset the status: %v", in.GetNotificationIntegration().GetStatus())
	}
}

// TestSlowReceiverBlocksNoOther: receivers that never answer hold one
// worker each; a delivery to another receiver is made while they hang.
func TestSlowReceiverBlocksNoOther(t *testing.T) {
	s := newNotifyStack(t)
	ctx := context.Background()
	release := make(chan struct{})
	var finished atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer finished.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	finishedWhenFast := atomic.Int32{}
	finishedWhenFast.Store(-1)
	fast := newReceiver(t, func(int) int {
		finishedWhenFast.Store(finished.Load())
		return http.StatusOK
	})
	for i, u := range []string{slow.URL, slow.URL, slow.URL, fast.URL} {
		if _, err := s.client.CreateNotificationIntegration(ctx, &projectsv1.CreateNotificationIntegrationRequest{Name: "Hook " + string(rune('a'+i)),
			Type: "RAW_WEBHOOK", Webhook: u, Events: map[string]bool{"trigger:build:start": true}}); err != nil {
			t.Fatal(err)
		}
	}
	s.publish(t, "builds", "build", "started", map[string]any{"teamId": "acme", "projectId": "p1", "buildId": "b1"})
	fast.wait(t, 1)
	if n := finishedWhenFast.Load(); n != 0 {
		t.Fatalf("%d requests to the slow receiver had ended when the fast one was served, want 0 (it must not wait for them)", n)
	}
}

// waitDelivery polls a target's history until its newest delivery
// satisfies done, and returns it.
func waitDelivery(t *testing.T, list func() (interface{ GetDeliveries() []*projectsv1.Delivery }, error), done func(*projectsv1.Delivery) bool) *projectsv1.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last *projectsv1.Delivery
	for time.Now().Before(deadline) {
		resp, err := list()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetDeliveries()) > 0 {
			last = resp.GetDeliveries()[0]
			if done(last) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("delivery never got there; last %v", last)
	return nil
}

// TestRedeliveredEventDeliversOnce: the stream delivers at least once; a
// second delivery of an event adds no delivery, and an event of a type
// notifications ignore adds none.
func TestRedeliveredEventDeliversOnce(t *testing.T) {
	db := openDB(t, sqldb.SQLite)
	store := projects.NewNotificationSQLStore(db, notificationBox(t))
	ctx := context.Background()
	now := time.Now().UTC()
	if err := store.CreateWebhook(ctx, projects.Webhook{TeamID: "acme", ID: "wh-1", URL: "http://127.0.0.1:9/", Events: []string{"*"}, Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	woken := 0
	handle := projects.NotificationHandler(store, time.Hour, func() { woken++ }, nil)
	ev, err := events.New("jobs", "run", "failed", "x", map[string]any{"teamId": "acme", "projectId": "p1", "jobId": "j", "reason": "Error"})
	if err != nil {
		t.Fatal(err)
	}
	ignored, _ := events.New("jobs", "run", "retrying", "x", map[string]any{"teamId": "acme", "projectId": "p1"})
	for _, e := range []events.Event{ev, ev, ignored} {
		if err := handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	list, _, _, err := store.ListDeliveries(ctx, "acme", projects.TargetWebhook, "wh-1", paging.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].EventID != ev.ID || list[0].EventType != "job_run.failed" || woken != 1 {
		t.Fatalf("deliveries %+v (woken %d times), want one job_run.failed", list, woken)
	}
	var body map[string]any
	if err := json.Unmarshal(list[0].Body, &body); err != nil || body["id"] != ev.ID || body["type"] != "job_run.failed" || body["created_at"] == nil ||
		body["data"].(map[string]any)["reason"] != "Error" {
		t.Fatalf("body %s (%v)", list[0].Body, err)
	}
}
