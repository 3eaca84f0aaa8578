package builds

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/services/builds/webhook"
)

// ReceiveGitWebhook implements BuildsService: a git host's push or pull
// request event for the service (or job) whose webhook id is in the URL. The
// event's signature (GitHub, Gitea) or token (GitLab) is checked against
// the webhook's secret; a delivery id seen before is refused (a replay);
// then the owner's rules decide whether the pushed commit builds.
func (s *Service) ReceiveGitWebhook(ctx context.Context, req *apiv1.WebhookRequest) (*apiv1.WebhookResponse, error) {
	// One answer for an unknown webhook and a bad signature, so that a
	// caller without the secret learns nothing about which ids exist.
	denied := &apierr.Error{Code: codes.Unauthenticated, Reason: apierr.ReasonUnauthenticated,
		Message: "the event's signature does not match this webhook's secret"}
	w, err := s.store.WebhookByID(ctx, req.GetParams()["webhook_id"])
	if errors.Is(err, ErrNotFound) {
		return nil, denied
	}
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	for k, v := range req.GetHeaders() {
		headers.Set(k, v)
	}
	ev, err := webhook.Receive(headers, req.GetBody(), w.Secret)
	switch {
	case errors.Is(err, webhook.ErrSignature):
		s.log.WarnContext(ctx, "a webhook event with a bad signature", "service", w.ServiceID)
		return nil, denied
	case errors.Is(err, webhook.ErrTooLarge):
		return nil, apierr.InvalidField("body", err.Error())
	case errors.Is(err, webhook.ErrUnsupportedEvent):
		return &apiv1.WebhookResponse{Result: "ignored: " + err.Error()}, nil
	case err != nil:
		return nil, apierr.InvalidField("body", err.Error())
	}
	first, err := s.store.SeeDelivery(ctx, w.ID, ev.DeliveryID, s.opts.Clock(), s.opts.Clock().Add(-replayWindow))
	if err != nil {
		return nil, err
	}
	if !first {
		return nil, apierr.Conflict(apierr.ReasonWebhookReplay, "delivery %q was received before", ev.DeliveryID)
	}
	if ev.Kind == webhook.Ping {
		return &apiv1.WebhookResponse{Result: "pong"}, nil
	}
	src, err := s.opts.Sources.Source(ctx, ServiceKey{TeamID: w.TeamID, ProjectID: w.ProjectID, Kind: w.Kind, ServiceID: w.ServiceID})
	if err != nil {
		return nil, err
	}
	what := "service" // the answers name the webhook's owner
	if w.Kind == KindJob {
		what = "job"
	}
	if !sameRepo(src.URL, ev.RepoURLs) {
		return &apiv1.WebhookResponse{Result: "ignored: the event is for another repository than the " + what + "'s"}, nil
	}
	if src.DisabledCI {
		return &apiv1.WebhookResponse{Result: "ignored: continuous integration is disabled for this " + what}, nil
	}
	b := Build{TeamID: src.TeamID, ProjectID: src.ProjectID, Kind: src.ServiceKey.Kind, ServiceID: src.ServiceID, Trigger: "webhook"}
	var messages, paths []string
	switch {
	case ev.Kind == webhook.PullRequest && ev.PullRequest != nil:
		pr := ev.PullRequest
		if pr.State != "open" {
			return &apiv1.WebhookResponse{Result: "ignored: the pull request is " + pr.State}, nil
		}
		b.PullRequest, b.SHA, b.Branch = int64(pr.ID), pr.SHA, pr.Source
	case ev.Kind == webhook.Push:
		if ev.Branch == "" {
			return &apiv1.WebhookResponse{Result: "ignored: not a branch push (" + ev.Ref + ")"}, nil
		}
		if ev.Deleted {
			return &apiv1.WebhookResponse{Result: "ignored: the branch was deleted"}, nil
		}
		b.Branch, b.SHA = ev.Branch, ev.SHA
		for _, c := range ev.Commits {
			messages = append(messages, c.Message)
			paths = append(paths, c.Added...)
			paths = append(paths, c.Modified...)
			paths = append(paths, c.Removed...)
		}
		if len(messages) == 0 && ev.HeadCommitMessage != "" {
			messages = []string{ev.HeadCommitMessage}
		}
	default:
		return &apiv1.WebhookResponse{Result: "ignored: not a push or pull request event"}, nil
	}
	if ok, why := s.allowed(src, b.Branch, b.PullRequest, messages, paths); !ok {
		return &apiv1.WebhookResponse{Result: "not built: " + why}, nil
	}
	b, err = s.start(ctx, b)
	if err != nil {
		return nil, err
	}
	// The poller need not build this head again.
	if heads, err := s.store.PollState(ctx, src.ServiceKey); err == nil && heads != nil {
		heads[headKey(Ref{Name: b.Branch, PullRequest: b.PullRequest})] = b.SHA
		_ = s.store.SetPollState(ctx, src.ServiceKey, heads)
	}
	return &apiv1.WebhookResponse{Result: fmt.Sprintf("queued build %s of %s", b.ID, short(b.SHA)), BuildIds: []string{b.ID}}, nil
}

// sameRepo reports whether one of an event's repository URLs is the
// service's.
func sameRepo(service string, urls []string) bool {
	for _, u := range urls {
		if webhook.SameRepo(service, u) {
			return true
		}
	}
	return false
}
