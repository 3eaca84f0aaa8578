package testenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// TestSSHD checks the ssh server: the client key logs in and reaches git
// through git-shell (no shell), its host key matches KnownHosts, and
// another key is refused.
func TestSSHD(t *testing.T) {
	s := testenv.StartSSHD(t)
	repo := gitserver.NewFileRepo(t, t.TempDir(), "app", 0)
	sha := repo.Commit(t, "main", "c", map[string]string{"a": "b"})

	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(s.KnownHosts+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostCheck, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port)
	connect := func(key string) (*ssh.Client, error) {
		signer, err := ssh.ParsePrivateKey([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: s.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hostCheck, Timeout: 5 * time.Second,
		})
	}
	c, err := connect(s.ClientKey)
	if err != nil {
		t.Fatalf("login with the client key: %v", err)
	}
	defer c.Close()
	run := func(cmd string) (string, error) {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		sess.Stdin = strings.NewReader("0000")
		out, err := sess.CombinedOutput(cmd)
		return string(out), err
	}
	if out, err := run("git-upload-pack '" + repo.Path + "'"); err != nil || !strings.Contains(out, sha+" HEAD") {
		t.Errorf("git-upload-pack: %v\n%s", err, out)
	}
	if out, err := run("id"); err == nil {
		t.Errorf("a shell command ran: %s", out)
	}

	other, _ := testenv.SSHKey(t)
	if c, err := connect(other); err == nil {
		c.Close()
		t.Error("a key that is not authorized logged in")
	}
}
