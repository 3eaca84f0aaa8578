package e2e

import (
	"encoding/json"
	"fmt"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// TestBuildsOverSSH builds services from a repository on a real OpenSSH
// server through the API: with the private key and the server's known
// host key it builds and lists branches; by a host name, with known_hosts
// written for that name although the clone connects to the address
// checked; from a git scp-like URL (user@host:path, port 22); a wrong
// host key or a wrong key
// ends the build FAILURE with a message that says so and no key material
// anywhere; malformed knownHosts are a 400; the credentials are never
// answered.
func TestBuildsOverSSH(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	sshd22 := testenv.StartSSHD(t, testenv.SSHDOnPort(22))
	repo := gitserver.NewFileRepo(t, t.TempDir(), "site", 0)
	sha := repo.Commit(t, "main", "site", map[string]string{"index.html": "over ssh"})
	otherKey, otherPub := testenv.SSHKey(t)
	impostor := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", sshd.Port))}, otherPub)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// scp-like paths are relative to the user's home.
	homePath, err := filepath.Rel(u.HomeDir, repo.Path)
	if err != nil {
		t.Fatal(err)
	}
	inst := startSlipway(t, "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1,localhost,"+sshd22.Host, "SLIPWAY_BUILD_POLL_INTERVAL=0")
	base := inst.URL + "/v1/projects/ssh-builds/services"
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"SSH Builds"}`).data(t)

	keyLines := func(s string) bool {
		for _, k := range []string{sshd.ClientKey, otherKey} {
			for _, l := range strings.Split(k, "\n") {
				if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(s, l) {
					return true
				}
			}
		}
		return false
	}
	createURL := func(name, url, key, hosts string) response {
		creds, _ := json.Marshal(map[string]string{"privateKey": key, "knownHosts": hosts})
		return callJSON(t, "POST", base+"/build", fmt.Sprintf(`{"name":%q,"billing":{"buildPlan":"nf-compute-20"},
			"vcsData":{"projectUrl":%q,"projectType":"self-hosted","credentials":%s},"buildSettings":{"buildpack":{}}}`, name, url, creds))
	}
	create := func(name, key, hosts string) response { return createURL(name, sshd.URL(repo.Path), key, hosts) }
	hostKey := strings.Fields(string(ssh.MarshalAuthorizedKey(sshd.HostKey)))[1]
	build := func(service string) (map[string]any, string) {
		t.Helper()
		id := callJSON(t, "POST", base+"/"+service+"/build", `{"branch":"main"}`).data(t)["id"].(string)
		b := awaitBuild(t, base+"/"+service, id, 2*time.Minute)
		return b, buildLog(t, base+"/"+service, id)
	}

	r := create("Keyed", sshd.ClientKey, sshd.KnownHosts)
	r.data(t)
	if keyLines(string(r.Raw)) || strings.Contains(string(r.Raw), hostKey) || strings.Contains(string(r.Raw), "knownHosts") {
		t.Errorf("the created service shows its credentials: %s", r.Raw)
	}
	if got := callJSON(t, "GET", base+"/keyed", ""); strings.Contains(string(got.Raw), hostKey) || strings.Contains(string(got.Raw), "knownHosts") {
		t.Errorf("GET shows the known hosts: %s", got.Raw)
	}
	b, log := build("keyed")
	if b["status"] != "SUCCESS" || b["sha"] != sha {
		t.Fatalf("the build over ssh: %v\nlog:\n%s", b, log)
	}
	if keyLines(log) {
		t.Errorf("the private key is in the build log:\n%s", log)
	}
	branches, _ := callJSON(t, "GET", base+"/keyed/branches", "").data(t)["branches"].([]any)
	if len(branches) != 1 || branches[0].(map[string]any)["name"] != "main" {
		t.Errorf("branches over ssh: %v", branches)
	}

	for _, c := range []struct{ name, service, url, key, hosts string }{
		{"By name", "by-name", fmt.Sprintf("ssh://%s@localhost:%d%s", sshd.User, sshd.Port, repo.Path), sshd.ClientKey, sshd.KnownHostsFor("localhost")},
		{"Scp like", "scp-like", sshd22.User + "@" + sshd22.Host + ":" + homePath, sshd22.ClientKey, sshd22.KnownHosts},
	} {
		createURL(c.name, c.url, c.key, c.hosts).data(t)
		if b, log := build(c.service); b["status"] != "SUCCESS" || b["sha"] != sha {
			t.Errorf("%s: the build from %s: %v\nlog:\n%s", c.name, c.url, b, log)
		}
	}

	for _, c := range []struct{ name, key, hosts, want string }{
		{"Impostor", sshd.ClientKey, impostor, "host key"},
		{"Wrong key", otherKey, sshd.KnownHosts, "authentication failed"},
	} {
		create(c.name, c.key, c.hosts).data(t)
		b, log := build(strings.ReplaceAll(strings.ToLower(c.name), " ", "-"))
		msg, _ := b["message"].(string)
		if b["status"] != "FAILURE" || !strings.Contains(msg, c.want) {
			t.Errorf("%s: build %v, want FAILURE saying %q\nlog:\n%s", c.name, b, c.want, log)
		}
		if keyLines(msg + log) {
			t.Errorf("%s: a private key leaked: %q\n%s", c.name, msg, log)
		}
	}

	e := create("Malformed", sshd.ClientKey, sshd.KnownHosts+"\nnot a known_hosts line").apiErr(t, 400)
	if !strings.Contains(fmt.Sprint(e.Details), "knownHosts") {
		t.Errorf("malformed knownHosts: %+v", e)
	}
}
