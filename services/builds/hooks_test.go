package builds_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds"
)

// githubDelivery is a GitHub push delivery of sha to branch of the
// repository at url, signed with secret: its headers and body as the
// gateway hands them to ReceiveGitWebhook.
func githubDelivery(hookID, secret, delivery, url, branch, sha, message string) *apiv1.WebhookRequest {
	body, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/" + branch, "before": strings.Repeat("0", 40), "after": sha,
		"repository":  map[string]any{"clone_url": url},
		"head_commit": map[string]any{"id": sha, "message": message},
		"commits":     []any{map[string]any{"id": sha, "message": message, "added": []string{}, "modified": []string{"task.py"}, "removed": []string{}}},
	})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return &apiv1.WebhookRequest{
		Params: map[string]string{"webhook_id": hookID},
		Headers: map[string]string{"x-github-event": "push", "x-github-delivery": delivery, "content-type": "application/json",
			"x-hub-signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))},
		Body: body,
	}
}

// TestJobBuildWebhook: a job that builds from git has a push webhook of
// its own, on the code path of services' (same URL shape, secret, checks):
// a signed push of the job's branch queues a build of the job; a forged
// signature is refused and builds nothing, as do a replay, a push to
// another branch (a job builds its one branch), a push to another
// repository (answered as the job's) and a [skip ci] commit; a
// rotated secret replaces the old one. A service of the same id has no
// webhook from it: the owner's kind is part of the webhook's key.
func TestJobBuildWebhook(t *testing.T) {
	gs := gitserver.New(t)
	repo := gs.Repo(t, "report")
	repo.Commit(t, "main", "first", map[string]string{"task.py": "print('v1')\n"})
	key := builds.ServiceKey{TeamID: "acme", ProjectID: "ops", Kind: builds.KindJob, ServiceID: "report"}
	reg := &registry{srcs: []builds.Source{{ServiceKey: key, Kind: "job", URL: repo.URL, Branch: "main",
		Buildpack: &builds.Buildpack{Context: "/"}}}}
	svc, store := newPollEnv(t).service(t, sqltest.Open(t, sqldb.SQLite, schema...), "r1", reg, time.Now)
	ctx := authz.WithGrant(context.Background(), &authv1.TeamGrant{TeamId: "acme"})
	list := func() []builds.Build {
		t.Helper()
		bs, _, _, err := store.ListBuilds(ctx, key, paging.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}

	if _, err := svc.GetJobBuildWebhook(ctx, &buildsv1.GetServiceBuildWebhookRequest{ProjectId: "ops"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a job's webhook without a job id: %v; want InvalidArgument", err)
	}
	if _, err := svc.GetServiceBuildWebhook(ctx, &buildsv1.GetServiceBuildWebhookRequest{ProjectId: "ops", ServiceId: "report"}); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("the webhook of a service named as the job: %v; want not found", err)
	}
	got, err := svc.GetJobBuildWebhook(ctx, &buildsv1.GetServiceBuildWebhookRequest{ProjectId: "ops", JobId: "report"})
	if err != nil {
		t.Fatal(err)
	}
	hook := got.GetWebhook()
	hookID, ok := strings.CutPrefix(hook.GetUrl(), "/v1/git-webhooks/")
	if !ok || hookID == "" || len(hook.GetSecret()) < 32 || hook.GetContentType() != "application/json" {
		t.Fatalf("the job's webhook: %v", hook)
	}
	if again, err := svc.GetJobBuildWebhook(ctx, &buildsv1.GetServiceBuildWebhookRequest{ProjectId: "ops", JobId: "report"}); err != nil ||
		again.GetWebhook().GetUrl() != hook.GetUrl() || again.GetWebhook().GetSecret() != hook.GetSecret() {
		t.Errorf("the job's webhook asked again: %v, %v; want the same", again, err)
	}

	sha := repo.Commit(t, "main", "second", map[string]string{"task.py": "print('v2')\n"})
	forged := githubDelivery(hookID, "not-the-secret", "d-1", repo.URL, "main", sha, "second")
	if _, err := svc.ReceiveGitWebhook(ctx, forged); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a forged signature: %v; want Unauthenticated", err)
	}
	if bs := list(); len(bs) != 0 {
		t.Fatalf("a forged signature built: %+v", bs)
	}

	push := githubDelivery(hookID, hook.GetSecret(), "d-2", repo.URL, "main", sha, "second")
	res, err := svc.ReceiveGitWebhook(ctx, push)
	if err != nil || len(res.GetBuildIds()) != 1 {
		t.Fatalf("a signed push of the job's branch: %v, %v; want one build", res, err)
	}
	bs := list()
	if len(bs) != 1 || bs[0].ID != res.GetBuildIds()[0] || bs[0].SHA != sha || bs[0].Branch != "main" ||
		bs[0].Trigger != "webhook" || bs[0].Kind != builds.KindJob || bs[0].ServiceID != "report" {
		t.Fatalf("the job's builds after the push: %+v", bs)
	}
	if _, err := svc.ReceiveGitWebhook(ctx, push); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("the same delivery again: %v; want refused as a replay", err)
	}
	other := repo.Commit(t, "feature", "elsewhere", map[string]string{"task.py": "print('f')\n"})
	if res, err := svc.ReceiveGitWebhook(ctx, githubDelivery(hookID, hook.GetSecret(), "d-3", repo.URL, "feature", other, "elsewhere")); err != nil ||
		len(res.GetBuildIds()) != 0 || !strings.Contains(res.GetResult(), "only its branch main") {
		t.Errorf("a push to another branch: %v, %v; want not built", res, err)
	}
	skipped := repo.Commit(t, "main", "docs [skip ci]", map[string]string{"README": "docs"})
	if res, err := svc.ReceiveGitWebhook(ctx, githubDelivery(hookID, hook.GetSecret(), "d-4", repo.URL, "main", skipped, "docs [skip ci]")); err != nil ||
		len(res.GetBuildIds()) != 0 || !strings.HasPrefix(res.GetResult(), "not built") {
		t.Errorf("a [skip ci] push: %v, %v; want not built", res, err)
	}
	if res, err := svc.ReceiveGitWebhook(ctx, githubDelivery(hookID, hook.GetSecret(), "d-7", "http://127.0.0.1:1/other.git", "main", sha, "second")); err != nil ||
		len(res.GetBuildIds()) != 0 || res.GetResult() != "ignored: the event is for another repository than the job's" {
		t.Errorf("a push to another repository: %v, %v; want ignored", res, err)
	}
	if bs := list(); len(bs) != 1 {
		t.Errorf("builds after the refused pushes: %+v; want the one", bs)
	}

	rotated, err := svc.RotateJobBuildWebhook(ctx, &buildsv1.RotateServiceBuildWebhookRequest{ProjectId: "ops", JobId: "report"})
	if err != nil || rotated.GetWebhook().GetUrl() != hook.GetUrl() || rotated.GetWebhook().GetSecret() == hook.GetSecret() {
		t.Fatalf("rotating the job's webhook: %v, %v; want the same URL with a new secret", rotated, err)
	}
	if _, err := svc.ReceiveGitWebhook(ctx, githubDelivery(hookID, hook.GetSecret(), "d-5", repo.URL, "main", sha, "second")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the old secret after a rotation: %v; want Unauthenticated", err)
	}
	if res, err := svc.ReceiveGitWebhook(ctx, githubDelivery(hookID, rotated.GetWebhook().GetSecret(), "d-6", repo.URL, "main", sha, "second")); err != nil || len(res.GetBuildIds()) != 1 {
		t.Errorf("the new secret after a rotation: %v, %v; want a build", res, err)
	}
}
