//go:build linux

package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

var (
	buildPushes  = flag.Int("bench.buildpushes", 3, "pushes (webhook → new version served) measured per runtime driver")
	buildByHand  = flag.Int("bench.buildbyhand", 3, "`podman build` runs by hand measured against Slipway's Dockerfile builds")
	buildMaxTime = flag.Duration("bench.buildmaxtime", 5*time.Minute, "time cap on the pushes of one driver: no new push starts past it")
)

// buildDockerfile is the docker driver's app: the version file copied
// first, so that a new commit misses the layer cache from there on (the
// base image is local), a step that runs a command with the GREETING
// build argument, and the served stage as the target (the stage after it
// is never built).
func buildDockerfile(base string) string {
	return `FROM ` + base + ` AS web
COPY version.txt /src/version.txt
ARG GREETING=unset
RUN mkdir -p /www && echo "$(cat /src/version.txt)" > /www/index.html && echo "$GREETING" > /www/greeting
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p $PORT -h /www & wait"]

FROM web AS unused
RUN exit 7
`
}

// buildPyApp is the process driver's app, a Procfile and Python's
// standard library: the buildpack's "Procfile" stack.
func buildPyApp(version string) map[string]string {
	return map[string]string{
		"Procfile": "web: python3 app.py\n",
		"app.py": `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"` + version + `\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
	}
}

// BenchmarkBuilds measures "push code, get a running app" per runtime
// driver: a build service on a repository of the loopback git server and
// a deployment service that follows its branch (internal, latest); each
// measured push commits a new version and announces it with a signed
// GitHub webhook, and is timed from just before the webhook is sent
//
//   - until GET …/build/{id} shows SUCCESS (push → built), and
//   - until GET / through the ingress answers the new version (push →
//     serving).
//
// The process driver builds a Procfile app with the buildpack in the
// sandbox; the docker driver builds a Dockerfile on testenv's busybox
// image through a private Podman service's /build. On the docker driver
// the Dockerfile build step alone (from the build log's "building image"
// line to its "built image" line) is compared with `podman build` run by
// hand (podman --remote against the same Podman service) on the same
// Dockerfile, base image, build argument, target, CPU and memory limits,
// and a context of the same files. Both sides build contexts never built
// before (a new version.txt each time, copied by the first step), so no
// step after FROM hits the layer cache on either side; the base image is
// local to both.
func BenchmarkBuilds(b *testing.B) {
	drivers := []struct {
		name  string
		setup func(b *testing.B) (env []string, host, base string)
	}{
		{"process", func(*testing.B) ([]string, string, string) {
			return []string{"SLIPWAY_RUNTIME_DRIVER=process"}, "", ""
		}},
		{"docker", func(b *testing.B) ([]string, string, string) {
			host := testenv.Podman(b)
			base := testenv.BuildTestImage(b, host)
			return []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host}, host, base
		}},
	}
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			env, host, base := d.setup(b)
			files := func(version string) map[string]string {
				if host == "" {
					return buildPyApp(version)
				}
				return map[string]string{"Dockerfile": buildDockerfile(base), "version.txt": version + "\n"}
			}
			gs := gitserver.New(b)
			repo := gs.Repo(b, "app")
			repo.Commit(b, "main", "v0", files("v0"))
			env = append(env, "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_BUILD_POLL_INTERVAL=0")
			srv := startServer(b, "", env...)
			var project struct{ Data struct{ ID string } }
			if err := srv.call("POST", "/v1/projects", `{"name":"Build bench"}`, &project); err != nil {
				b.Fatalf("create project: %v", err)
			}
			p := "/v1/projects/" + project.Data.ID
			settings := `"buildSettings":{"buildpack":{"buildContext":"/"}}`
			if host != "" {
				settings = `"buildSettings":{"dockerfile":{"dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}},
					"buildConfiguration":{"dockerfileTarget":"web"},"buildArguments":{"GREETING":"hello"}`
			}
			if err := srv.call("POST", p+"/services/build", fmt.Sprintf(`{"name":"App","billing":{"buildPlan":"nf-compute-100-1"},
				"vcsData":{"projectUrl":%q,"projectType":"self-hosted"},%s}`, repo.URL, settings), nil); err != nil {
				b.Fatalf("create build service: %v", err)
			}
			app := p + "/services/app"
			if _, err := startBuild(srv, app); err != nil {
				b.Fatal(err)
			}
			if err := srv.call("POST", p+"/services/deployment", `{"name":"Web","billing":{"deploymentPlan":"nf-compute-100-1"},
				"deployment":{"instances":1,"internal":{"id":"app","branch":"main","buildSHA":"latest"}},
				"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
				"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
					"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`, nil); err != nil {
				b.Fatalf("create deployment service: %v", err)
			}
			ing := ingressGetter(srv, "web", project.Data.ID)
			if err := waitFor(func() (bool, error) { body, err := ing(); return err == nil && body == "v0", nil }); err != nil {
				b.Fatalf("the first build is not served: %v\n%s", err, srv.logTail())
			}
			if err := waitCompleted(srv, p+"/services/web"); err != nil {
				b.Fatal(err)
			}
			var hook struct{ Data struct{ URL, Secret string } }
			if err := srv.call("GET", app+"/build-webhook", "", &hook); err != nil {
				b.Fatalf("webhook: %v", err)
			}
			b.ResetTimer()

			var built, served, steps []time.Duration
			capAt := time.Now().Add(*buildMaxTime)
			for i := 1; i <= *buildPushes && time.Now().Before(capAt); i++ {
				v := fmt.Sprintf("v%d", i)
				sha := repo.Commit(b, "main", v, files(v))
				t0 := time.Now()
				id, err := pushWebhook(srv, hook.Data.URL, hook.Data.Secret, fmt.Sprintf("bench-%d", i), repo.URL, sha)
				if err != nil {
					b.Fatal(err)
				}
				doneBuild, doneServe := time.Duration(0), time.Duration(0)
				err = waitFor(func() (bool, error) {
					if doneBuild == 0 {
						st, err := buildStatus(srv, app, id)
						if err != nil {
							return false, err
						}
						switch st {
						case "SUCCESS":
							doneBuild = time.Since(t0)
						case "FAILURE", "ABORTED":
							return false, fmt.Errorf("build %s of %s ended %s", id, v, st)
						}
					}
					if doneServe == 0 {
						if body, err := ing(); err == nil && body == v {
							doneServe = time.Since(t0)
						}
					}
					return doneBuild != 0 && doneServe != 0, nil
				})
				if err != nil {
					b.Fatalf("push of %s: %v\n%s", v, err, srv.logTail())
				}
				built, served = append(built, doneBuild), append(served, doneServe)
				if host != "" {
					step, err := buildStep(srv, app, id)
					if err != nil {
						b.Fatal(err)
					}
					steps = append(steps, step)
				}
				// The rollout ends before the next push, so pushes do not overlap.
				if err := waitCompleted(srv, p+"/services/web"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(served)), "pushes")
			b.ReportMetric(ms(percentile(built, 50)), "push-to-built-p50-ms")
			b.ReportMetric(ms(percentile(served, 50)), "push-to-serving-p50-ms")
			b.ReportMetric(ms(percentile(served, 100)), "push-to-serving-max-ms")
			if host == "" {
				return
			}
			b.ReportMetric(ms(percentile(steps, 50)), "slipway-build-step-p50-ms")

			// podman build by hand, on the same Podman service.
			var hand []time.Duration
			for i := 1; i <= *buildByHand && time.Now().Before(capAt.Add(time.Minute)); i++ {
				dir := b.TempDir()
				for name, content := range files(fmt.Sprintf("hand%d", i)) {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				dt, err := podmanBuild(host, dir, fmt.Sprintf("localhost/bench/hand:%d", i))
				if err != nil {
					b.Fatal(err)
				}
				hand = append(hand, dt)
			}
			b.ReportMetric(ms(percentile(hand, 50)), "podman-build-p50-ms")
			// What the by-hand side pays besides the build: the podman
			// CLI's start and its connection to the service.
			var cli []time.Duration
			for range 3 {
				t0 := time.Now()
				if out, err := exec.Command("podman", "--remote", "--url", host, "version").CombinedOutput(); err != nil {
					b.Fatalf("podman version: %v\n%s", err, out)
				}
				cli = append(cli, time.Since(t0))
			}
			b.ReportMetric(ms(percentile(cli, 50)), "podman-cli-start-p50-ms")
			b.ReportMetric(float64(percentile(steps, 50))/float64(percentile(hand, 50)), "step-ratio-p50")
			b.ReportMetric(float64(percentile(built, 50))/float64(percentile(hand, 50)), "push-to-built-ratio-p50")
		})
	}
}

// startBuild starts a build of main and returns its id.
func startBuild(srv *server, svc string) (string, error) {
	var started struct{ Data struct{ ID string } }
	if err := srv.call("POST", svc+"/build", `{"branch":"main"}`, &started); err != nil {
		return "", fmt.Errorf("start build: %w", err)
	}
	return started.Data.ID, nil
}

// pushWebhook sends a GitHub push of sha to main, signed with secret, and
// returns the id of the build it queued.
func pushWebhook(srv *server, hookURL, secret, delivery, repoURL, sha string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha,
		"repository":  map[string]any{"clone_url": repoURL},
		"head_commit": map[string]any{"id": sha, "message": "bench"},
		"commits":     []any{map[string]any{"id": sha, "message": "bench", "added": []string{}, "modified": []string{"version.txt"}, "removed": []string{}}},
	})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest("POST", hookURL, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	res, err := srv.client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			BuildIDs []string `json:"buildIds"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK || len(out.Data.BuildIDs) != 1 {
		return "", fmt.Errorf("webhook: HTTP %d, %+v, %v", res.StatusCode, out, err)
	}
	return out.Data.BuildIDs[0], nil
}

// buildStatus is the status GET …/build/{id} shows.
func buildStatus(srv *server, svc, id string) (string, error) {
	var b struct{ Data struct{ Status string } }
	err := srv.call("GET", svc+"/build/"+id, "", &b)
	return b.Data.Status, err
}

// buildStep is the time between a Dockerfile build's "building image" and
// "built image" log lines: the engine's /build and the check that the
// image is there.
func buildStep(srv *server, svc, id string) (time.Duration, error) {
	var logs struct {
		Data []struct {
			Log string
			Ts  time.Time
		}
	}
	if err := srv.call("GET", svc+"/build-logs?direction=forward&lineLimit=10000&buildId="+id, "", &logs); err != nil {
		return 0, err
	}
	var from, to time.Time
	for _, l := range logs.Data {
		switch {
		case strings.Contains(l.Log, "slipway: building image"):
			from = l.Ts
		case strings.Contains(l.Log, "slipway: built image"):
			to = l.Ts
		}
	}
	if from.IsZero() || to.IsZero() {
		return 0, fmt.Errorf("build %s: no building/built image lines in %d log lines", id, len(logs.Data))
	}
	return to.Sub(from), nil
}

// podmanBuild runs `podman --remote build` of dir against the Podman
// service at host with what Slipway gives its builds (the build argument,
// the target, the plan's CPU and memory, the docker driver's default
// ulimits) and returns how long it took.
func podmanBuild(host, dir, tag string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), svcTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", "--remote", "--url", host, "build", "--quiet",
		"--build-arg", "GREETING=hello", "--target", "web", "--tag", tag,
		"--cpu-period", "100000", "--cpu-quota", "100000", "--memory", "1024m",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", dir)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	dt := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("podman build: %v\n%s", err, out)
	}
	return dt, nil
}
