package testenv_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// TestSSHD checks the ssh server, on a free port of 127.0.0.1 and on port
// 22 of another loopback address: the client key logs in and reaches git
// through git-shell (no shell), its host key matches KnownHosts, and
// another key is refused.
func TestSSHD(t *testing.T) {
	t.Run("free port", func(t *testing.T) {
		s := testenv.StartSSHD(t)
		if s.Host != "127.0.0.1" || s.Port == 22 || !strings.HasPrefix(s.KnownHosts, fmt.Sprintf("[127.0.0.1]:%d ", s.Port)) {
			t.Errorf("server on %s port %d, known hosts %q", s.Host, s.Port, s.KnownHosts)
		}
		checkSSHD(t, s)
	})
	t.Run("port 22", func(t *testing.T) {
		s := testenv.StartSSHD(t, testenv.SSHDOnPort(22))
		if s.Port != 22 || s.Host == "127.0.0.1" || !strings.HasPrefix(s.Host, "127.") || !strings.HasPrefix(s.KnownHosts, s.Host+" ") {
			t.Errorf("server on %s port %d, known hosts %q", s.Host, s.Port, s.KnownHosts)
		}
		if want := "ssh://" + s.User + "@" + s.Host + ":22/r.git"; s.URL("/r.git") != want {
			t.Errorf("URL %q, want %q", s.URL("/r.git"), want)
		}
		checkSSHD(t, s)
	})
}

func checkSSHD(t *testing.T, s *testenv.SSHD) {
	t.Helper()
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
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
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
