package jobs_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/services/addons/secretstest"
	"github.com/slipwayhq/slipway/services/jobs"
)

// withSecretGroups makes the jobs service resolve runs' secret groups
// through g, with its secret files under dir.
func withSecretGroups(g *secretstest.Server, dir string) func(*jobs.Options) {
	return func(o *jobs.Options) { o.Secrets, o.Internal, o.FilesDir = g.Client, g.Internal, dir }
}

// TestRunsGetSecretGroups: a run gets the project's secret groups that
// apply to it, merged by priority, under its job's own environment and
// its overrides (which win); the groups' files at their paths; the linked
// addon's values under NF_<ADDON>_<KEY> and the alias, and its socket
// directory mounted read-only. A group changed after a run is seen by the
// next run; a run's files are removed when it ends.
func TestRunsGetSecretGroups(t *testing.T) {
	groups := secretstest.New(t, teamID, projectID, adminCred, quiet)
	filesDir := filepath.Join(t.TempDir(), "files")
	h := newHarness(t, withSecretGroups(groups, filesDir))
	admin := as(adminCred)
	mk := func(spec *addonsv1.SecretSpec) {
		t.Helper()
		if _, err := groups.Client.CreateSecret(admin, &addonsv1.CreateSecretRequest{ProjectId: projectID, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	mk(&addonsv1.SecretSpec{Name: "base", SecretType: "environment", Priority: 1,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "base", "FROM_BASE": "yes", "OWN": "base"},
			Files: map[string]*addonsv1.SecretFile{"/secrets/app.conf": {Data: base64.StdEncoding.EncodeToString([]byte("file from a group"))}}}})
	mk(&addonsv1.SecretSpec{Name: "high", SecretType: "environment", Priority: 50,
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"DB_PASSWORD"}}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "high", "OWN": "high"}}})
	mk(&addonsv1.SecretSpec{Name: "other job", SecretType: "environment", Priority: 100,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "another", Type: "job"}}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "not for this job"}}})

	h.manual("with-secrets", `echo "LEVEL=$LEVEL FROM_BASE=$FROM_BASE OWN=$OWN PW=$DB_PASSWORD NF=$NF_PG_PASSWORD"; cat /secrets/app.conf; echo; `+
		`cat /run/slipway/addons/pg/note; touch /run/slipway/addons/pg/x 2>/dev/null && echo WRITABLE || echo READONLY`,
		func(s *jobsv1.JobSpec) { s.RuntimeEnvironment = map[string]string{"OWN": "job"} })
	runLines := func(o *jobsv1.RunOverrides) []string {
		t.Helper()
		r := h.run("with-secrets", o)
		r = h.waitRun("with-secrets", r.GetId(), 20*time.Second, concluded)
		lines := h.logs("with-secrets", &jobsv1.GetJobLogsRequest{RunId: r.GetId()})
		if r.GetStatus() != "SUCCESS" {
			t.Fatalf("run = %v, logs %q", r, lines)
		}
		// The runner removes a run's files once it has recorded the run's
		// end, which the API may show a moment before: wait, bounded.
		dir := filepath.Join(filesDir, teamID, projectID, "with-secrets", r.GetId())
		_, err := os.Stat(dir)
		for deadline := time.Now().Add(10 * time.Second); !errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			_, err = os.Stat(dir)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the ended run's secret files are still on the host 10s after it ended: %v", err)
		}
		return lines
	}
	want := []string{"LEVEL=high FROM_BASE=yes OWN=job PW=pg-s3cret NF=pg-s3cret", "file from a group", "addon socket dir", "READONLY"}
	if got := runLines(nil); !slices.Equal(got, want) {
		t.Fatalf("first run's output %q, want %q", got, want)
	}

	// The next run sees a changed group; a run's own overrides still win.
	level := "changed"
	if _, err := groups.Client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": level, "OWN": "high"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := runLines(nil); got[0] != "LEVEL=changed FROM_BASE=yes OWN=job PW=pg-s3cret NF=pg-s3cret" {
		t.Fatalf("run after the change: %q", got)
	}
	if got := runLines(&jobsv1.RunOverrides{RuntimeEnvironment: map[string]string{"LEVEL": "override"}}); !strings.HasPrefix(got[0], "LEVEL=override ") {
		t.Fatalf("run with an override: %q", got)
	}
	// The job's own environment, as the API shows it, holds none of the
	// groups' values.
	env, err := h.client.GetJobRuntimeEnvironment(admin, &jobsv1.GetJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "with-secrets"})
	if err != nil || len(env.GetRuntimeEnvironment()) != 1 {
		t.Fatalf("job environment = %v, %v", env, err)
	}
}

// TestRunRefusedWithoutItsSecretGroups: when the secret groups cannot be
// read, a run is refused with 503 rather than started without them.
func TestRunRefusedWithoutItsSecretGroups(t *testing.T) {
	h := newHarness(t, func(o *jobs.Options) {
		o.Secrets, o.FilesDir = secretstest.Unreachable(t), t.TempDir()
	})
	h.manual("needs-secrets", "true")
	_, err := h.client.StartJobRun(as(adminCred), &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "needs-secrets"})
	wantCode(t, err, codes.Unavailable, "UNAVAILABLE")
	runs, err := h.client.ListJobRuns(as(adminCred), &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "needs-secrets"})
	if err != nil || len(runs.GetRuns()) != 0 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
}
