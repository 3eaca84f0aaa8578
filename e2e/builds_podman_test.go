package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// podmanDockerfile is a multi-stage Dockerfile on the local test image (no
// registry is reachable): the "web" stage serves the repository's
// version.txt and the GREETING build argument with busybox httpd on $PORT;
// the stage after it fails, so a build that went past the target would
// fail. sh is PID 1 and ends on SIGTERM (httpd as PID 1 would ignore it).
func podmanDockerfile(base string) string {
	return `FROM ` + base + ` AS base
COPY version.txt /src/version.txt

FROM base AS web
ARG GREETING=unset
RUN mkdir -p /www && echo "$(cat /src/version.txt) $GREETING" > /www/index.html
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p $PORT -h /www & wait"]

FROM web AS past-the-target
RUN echo "built past the target" && exit 7
`
}

// signGitea returns the headers of a Gitea push delivery of body signed
// with secret (X-Gitea-Signature: the bare hex HMAC-SHA256 of the body).
func signGitea(secret, delivery string, body []byte) []string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return []string{"X-Gitea-Event", "push", "X-Gitea-Delivery", delivery,
		"X-Gitea-Signature", hex.EncodeToString(mac.Sum(nil)), "Content-Type", "application/json"}
}

// engineImage is what the engine's list of images tells of one.
type engineImage struct {
	ID       string            `json:"Id"`
	RepoTags []string          `json:"RepoTags"`
	Labels   map[string]string `json:"Labels"`
}

// buildImages lists the engine's images (intermediate ones too) that
// carry build's label or tag.
func buildImages(t *testing.T, host, build, tag string) []engineImage {
	t.Helper()
	var all []engineImage
	engineGet(t, host, "/images/json?all=true", &all)
	var out []engineImage
	for _, im := range all {
		hit := im.Labels["slipway.build"] == build
		for _, rt := range im.RepoTags {
			if rt == tag || strings.HasSuffix(rt, "-"+build) {
				hit = true
			}
		}
		if hit {
			out = append(out, im)
		}
	}
	return out
}

// TestBuildsOnPodman is "push code, get a running app" on the docker
// driver against Podman: a build service builds a multi-stage Dockerfile
// (on the local test image, with a build argument and a target stage) of
// a repository on a loopback git server through the engine's /build; a
// deployment service follows its branch; a push announced by a signed
// Gitea webhook builds and rolls out under load with no failed request;
// an older build is deployed again (rollback to a commit). A failing
// Dockerfile ends FAILURE with the engine's error in its log, and an
// abort mid-build ends ABORTED and leaves no container and no image.
func TestBuildsOnPodman(t *testing.T) {
	host := testenv.Podman(t)
	base := testenv.BuildTestImage(t, host)
	gs := gitserver.New(t)
	repo := gs.Repo(t, "shop")
	files := func(version string) map[string]string {
		return map[string]string{"Dockerfile": podmanDockerfile(base), "version.txt": version + "\n"}
	}
	sha1 := repo.Commit(t, "main", "v1", files("v1"))
	ingressAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	inst := startSlipway(t, "SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST="+host,
		"SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_INGRESS_ADDR="+ingressAddr, "SLIPWAY_BUILD_POLL_INTERVAL=0",
		"SLIPWAY_BUILD_KEEP=2")
	projectURL := inst.URL + "/v1/projects/shop"
	svcURL := projectURL + "/services/app"
	webURL := projectURL + "/services/web"
	tagOf := func(sha, build string) string {
		return strings.ToLower(fmt.Sprintf("localhost/slipway/shop/app:%s-%s", sha[:12], build))
	}

	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Shop"}`).data(t)
	// The build service is made by the official JS client.
	svc := runJSData(t, inst.URL, `api.create.service.build({ parameters: { projectId: 'shop' }, data: JSON.parse(process.env.BODY) })`,
		"BODY="+fmt.Sprintf(`{"name":"App","billing":{"buildPlan":"nf-compute-100-1"},
		"vcsData":{"projectUrl":%q,"projectType":"self-hosted"},
		"buildSettings":{"dockerfile":{"buildEngine":"buildkit","dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}},
		"buildConfiguration":{"dockerfileTarget":"web"},
		"buildArguments":{"GREETING":"hello"}}`, repo.URL))
	if svc["serviceType"] != "build" {
		t.Fatalf("created %v", svc)
	}
	started := time.Now()
	build1 := callJSON(t, "POST", svcURL+"/build", `{"branch":"main"}`).data(t)["id"].(string)
	if b := awaitBuild(t, svcURL, build1, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha1 {
		t.Fatalf("the first build: %v\nlog:\n%s", b, buildLog(t, svcURL, build1))
	}
	t.Logf("first build: %s", time.Since(started).Round(time.Millisecond))
	// The CLI shows it.
	cli := newNorthflankCLI(t)
	config := fmt.Sprintf(`{"current":"e2e","contexts":[{"name":"e2e","token":%q,"host":%q}],"lastUpdateCheck":253402300799000}`, adminToken, inst.URL)
	if err := os.WriteFile(filepath.Join(cli.home, ".northflank", "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli.run("get", "service", "build", "--projectId", "shop", "--serviceId", "app", "--buildId", build1, "--output", "json"); out.exitCode != 0 ||
		!strings.Contains(out.stdout, sha1) || !strings.Contains(out.stdout, "SUCCESS") {
		t.Errorf("northflank get service build: exit %d\n%s%s", out.exitCode, out.stdout, out.stderr)
	}
	log1 := buildLog(t, svcURL, build1)
	if strings.Contains(log1, "built past the target") {
		t.Errorf("the build went past the target stage:\n%s", log1)
	}
	// The image is tagged per project, service and commit, and labelled
	// with its build.
	var insp struct {
		Config struct{ Labels map[string]string }
	}
	engineGet(t, host, "/images/"+url.PathEscape(tagOf(sha1, build1))+"/json", &insp)
	if l := insp.Config.Labels; l["slipway.build"] != build1 || l["slipway.project"] != "shop" || l["slipway.service"] != "app" || l["slipway.commit"] != sha1 {
		t.Errorf("labels of %s: %v", tagOf(sha1, build1), l)
	}

	callJSON(t, "POST", projectURL+"/services/deployment", `{"name":"Web","billing":{"deploymentPlan":"nf-compute-20"},
		"deployment":{"instances":1,"internal":{"id":"app","branch":"main","buildSHA":"latest"}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
		"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
			"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`).data(t)
	ing := newIngressClient(ingressAddr, "p01--web--shop.localhost")
	// The answer holds the build argument: it reached the build.
	ing.waitBody(t, "v1 hello", 60*time.Second)
	waitDeployment(t, webURL, 30*time.Second)

	// Abort mid-build: ABORTED at once, and within seconds nothing of
	// the build is left: no process of its step (Podman would run it on
	// to its end), no working container, no image. The step's shell is
	// named so that it is found by its command line.
	step := fmt.Sprintf("slow-step-%d", time.Now().UnixNano())
	shaSlow := repo.Commit(t, "slow", "slow", map[string]string{"Dockerfile": "FROM " + base +
		" AS web\nRUN sh -c 'echo started-sleeping; sleep 300; echo slept' " + step + "\nRUN echo never\n"})
	slow := callJSON(t, "POST", svcURL+"/build", `{"branch":"slow"}`).data(t)["id"].(string)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(buildLog(t, svcURL, slow), "started-sleeping") {
		if time.Now().After(deadline) {
			t.Fatalf("the slow build's step did not start within a minute:\n%s", buildLog(t, svcURL, slow))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stepStarted := time.Now()
	call(t, "DELETE", svcURL+"/build/"+slow, nil).data(t)
	done := awaitBuild(t, svcURL, slow, 30*time.Second)
	if done["status"] != "ABORTED" {
		t.Errorf("the aborted build: %v\nlog:\n%s", done, buildLog(t, svcURL, slow))
	}
	t.Logf("abort → ABORTED: %s", time.Since(stepStarted).Round(time.Millisecond))
	if left := testenv.AwaitBuildGone(t, host, step, 5*time.Second); left != "" {
		t.Errorf("5s after the abort: %s", left)
	}
	t.Logf("abort → nothing of the build left: %s", time.Since(stepStarted).Round(time.Millisecond))
	if ims := buildImages(t, host, slow, tagOf(shaSlow, slow)); len(ims) != 0 {
		t.Errorf("the aborted build left images: %+v", ims)
	}

	// A push announced by a signed Gitea webhook builds and rolls out
	// under load with no failed request.
	hook := callJSON(t, "GET", svcURL+"/build-webhook", "").data(t)
	hookURL, secret := hook["url"].(string), hook["secret"].(string)
	sha2 := repo.Commit(t, "main", "v2", files("v2"))
	stopLoad := ing.startLoad(5000, 120*time.Second)
	time.Sleep(300 * time.Millisecond)
	body := githubPush(repo.URL, "main", sha2, "v2") // Gitea's payload has GitHub's shape
	res := call(t, "POST", hookURL, strings.NewReader(string(body)), signGitea(secret, "gitea-delivery-2", body)...)
	ids, _ := res.data(t)["buildIds"].([]any)
	if len(ids) != 1 {
		t.Fatalf("the webhook queued %v", res.Body)
	}
	build2 := ids[0].(string)
	if b := awaitBuild(t, svcURL, build2, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha2 {
		t.Fatalf("the pushed build: %v\nlog:\n%s", b, buildLog(t, svcURL, build2))
	}
	ing.waitBody(t, "v2 hello", 60*time.Second)
	waitDeployment(t, webURL, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	checkSwitch(t, "push → build → rollout under load", stopLoad(), "v1 hello", "v2 hello")
	// A forged signature builds nothing.
	forged := signGitea("not-the-secret", "gitea-delivery-3", body)
	call(t, "POST", hookURL, strings.NewReader(string(body)), forged...).apiErr(t, 401)

	// Rollback to a commit: deploy the first build again, under load.
	stopLoad = ing.startLoad(5000, 120*time.Second)
	time.Sleep(300 * time.Millisecond)
	callJSON(t, "POST", webURL+"/deployment", fmt.Sprintf(`{"internal":{"id":"app","buildId":%q}}`, build1)).data(t)
	ing.waitBody(t, "v1 hello", 60*time.Second)
	waitDeployment(t, webURL, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	checkSwitch(t, "rollback to the first commit under load", stopLoad(), "v2 hello", "v1 hello")
	d := callJSON(t, "GET", webURL, "").data(t)
	if in, _ := d["deployment"].(map[string]any)["internal"].(map[string]any); in["deployedSHA"] != sha1 {
		t.Errorf("after deploying build %s, the service says %v", build1, in)
	}
	running := managedContainers(t, host)
	if len(running) != 1 {
		t.Fatalf("after the rollback %d containers run, want 1: %+v", len(running), running)
	}

	// A third successful build: the first is now beyond the newest two
	// kept (SLIPWAY_BUILD_KEEP=2), but a release runs it, so its image
	// stays and the running container is left alone.
	stopLoad = ing.startLoad(5000, 120*time.Second)
	sha3 := repo.Commit(t, "main", "v3", files("v3"))
	build3 := callJSON(t, "POST", svcURL+"/build", `{"branch":"main"}`).data(t)["id"].(string)
	if b := awaitBuild(t, svcURL, build3, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha3 {
		t.Fatalf("the third build: %v\nlog:\n%s", b, buildLog(t, svcURL, build3))
	}
	time.Sleep(2 * time.Second)
	checkSwitch(t, "a build while a rolled-back release runs", stopLoad(), "v1 hello", "v1 hello")
	if cs := managedContainers(t, host); len(cs) != 1 || cs[0].ID != running[0].ID || cs[0].State.StartedAt != running[0].State.StartedAt {
		t.Errorf("after a later build the containers are %+v, want the release's %+v untouched", cs, running)
	}
	engineGet(t, host, "/images/"+url.PathEscape(tagOf(sha1, build1))+"/json", &insp)

	// A failing Dockerfile: FAILURE with the engine's error in the log,
	// although the engine's /build answered 200.
	repo.Commit(t, "broken", "broken", map[string]string{"Dockerfile": "FROM " + base + " AS web\nRUN echo about to fail && exit 3\n"})
	failed := callJSON(t, "POST", svcURL+"/build", `{"branch":"broken"}`).data(t)["id"].(string)
	done = awaitBuild(t, svcURL, failed, time.Minute)
	failLog := buildLog(t, svcURL, failed)
	if done["status"] != "FAILURE" || !strings.Contains(failLog, "about to fail") || !strings.Contains(failLog, "exit status 3") {
		t.Errorf("a failing Dockerfile: %v\nlog:\n%s", done, failLog)
	}
	if msg, _ := done["message"].(string); !strings.Contains(msg, "image build failed") {
		t.Errorf("a failing Dockerfile's message: %q", msg)
	}
	if ims := buildImages(t, host, failed, ""); len(ims) != 0 {
		t.Errorf("a failed build left images: %+v", ims)
	}

	// Nothing of the aborted build came back meanwhile.
	if ims := buildImages(t, host, slow, tagOf(shaSlow, slow)); len(ims) != 0 {
		t.Errorf("the aborted build left images: %+v", ims)
	}
	// Still the first build serves, and it was never interrupted.
	if status, body, err := ing.get(); err != nil || status != 200 || body != "v1 hello" {
		t.Errorf("after the failed and aborted builds the service answers %d %q %v", status, body, err)
	}
	var list struct {
		Builds []map[string]any `json:"builds"`
	}
	raw, _ := json.Marshal(callJSON(t, "GET", svcURL+"/build?per_page=100", "").data(t))
	_ = json.Unmarshal(raw, &list)
	if len(list.Builds) != 5 {
		t.Errorf("%d builds, want 5 (three successes, a failure, an abort)", len(list.Builds))
	}

	// Deleting the project removes its containers and every image built.
	callJSON(t, "DELETE", projectURL+"?delete_child_objects=true", "").data(t)
	deadline = time.Now().Add(30 * time.Second)
	for {
		var left []string
		var all []engineImage
		if err := engineTryGet(host, "/images/json?all=true", &all); err != nil {
			// Podman's listing fails while an image is being removed.
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			t.Logf("%v (listing again)", err)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		for _, im := range all {
			if im.Labels["slipway.project"] == "shop" {
				left = append(left, fmt.Sprint(im.RepoTags, im.Labels["slipway.build"]))
			}
		}
		cs := managedContainers(t, host)
		if len(left) == 0 && len(cs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("30s after the project's deletion: images %v, containers %+v", left, cs)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestBuildsCloneImageOnPodman is the docker-compose.yml set-up through the
// binary: on the docker driver with SLIPWAY_BUILD_CLONE_IMAGE, a build
// service clones a private repository in a container of the clone image
// (not in the process sandbox, which the server never opens) and builds
// its Dockerfile; the password is nowhere in the build's log. The git
// server is on loopback; the clone containers reach it through
// slirp4netns's allow_host_loopback (SLIPWAY_BUILD_CLONE_NETWORK), where
// the host's 127.0.0.1 is 10.0.2.2.
func TestBuildsCloneImageOnPodman(t *testing.T) {
	host := testenv.Podman(t)
	base := testenv.BuildTestImage(t, host)
	cloneImage := testenv.BuildCloneImage(t, host)
	const user, pass = "builder", "clone-image-pa55word"
	gs := gitserver.New(t, gitserver.WithBasicAuth(user, pass))
	repo := gs.Repo(t, "private")
	sha := repo.Commit(t, "main", "v1", map[string]string{"Dockerfile": podmanDockerfile(base), "version.txt": "v1\n"})
	inst := startSlipway(t, "SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST="+host,
		"SLIPWAY_BUILD_CLONE_IMAGE="+cloneImage, "SLIPWAY_BUILD_CLONE_NETWORK=slirp4netns:allow_host_loopback=true",
		"SLIPWAY_BUILD_ALLOW_HOSTS=10.0.2.2", "SLIPWAY_BUILD_POLL_INTERVAL=0")
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Cloned"}`).data(t)
	svcURL := inst.URL + "/v1/projects/cloned/services/app"
	callJSON(t, "POST", inst.URL+"/v1/projects/cloned/services/build", fmt.Sprintf(`{"name":"App","billing":{"buildPlan":"nf-compute-100-1"},
		"vcsData":{"projectUrl":%q,"projectType":"self-hosted","credentials":{"username":%q,"password":%q}},
		"buildSettings":{"dockerfile":{"buildEngine":"buildkit","dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}},
		"buildConfiguration":{"dockerfileTarget":"web"}}`, strings.Replace(repo.URL, "127.0.0.1", "10.0.2.2", 1), user, pass)).data(t)

	id := callJSON(t, "POST", svcURL+"/build", `{"branch":"main"}`).data(t)["id"].(string)
	b := awaitBuild(t, svcURL, id, 2*time.Minute)
	log := buildLog(t, svcURL, id)
	if b["status"] != "SUCCESS" || b["sha"] != sha {
		t.Fatalf("the build: %v\nlog:\n%s", b, log)
	}
	if strings.Contains(log, pass) {
		t.Errorf("the password is in the build log:\n%s", log)
	}
	// The branches are read (git ls-remote) in a clone container too.
	branches, _ := callJSON(t, "GET", svcURL+"/branches", "").data(t)["branches"].([]any)
	if len(branches) != 1 || branches[0].(map[string]any)["name"] != "main" {
		t.Errorf("branches: %v", branches)
	}
	// Nothing ran in the process sandbox: its state directory was never
	// made; and no clone container is left.
	if _, err := os.Stat(filepath.Join(inst.DataDir, "builds-sandbox")); !os.IsNotExist(err) {
		t.Errorf("the process sandbox was opened: %v", err)
	}
	var left []struct {
		Names []string `json:"Names"`
	}
	engineGet(t, host, "/containers/json?all=true&filters="+url.QueryEscape(`{"label":["slipway.build"]}`), &left)
	if len(left) != 0 {
		t.Errorf("build containers left, running or not: %+v", left)
	}
}
