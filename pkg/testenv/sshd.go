package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is a throwaway OpenSSH server on 127.0.0.1 that serves git over
// ssh, as a self-hosted git server does: every session runs through
// git-shell, so a client may fetch and push but gets no shell.
type SSHD struct {
	// Port is the server's port on 127.0.0.1.
	Port int
	// User is the account clients log in as: the user running the test
	// (root on the CI machine), the only one a test may serve as.
	User string
	// ClientKey is the OpenSSH private key (PEM) the server accepts.
	ClientKey string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// KnownHosts is a known_hosts line for the server's host key, as
	// `ssh-keyscan -p PORT 127.0.0.1` prints it.
	KnownHosts string
}

// URL is the ssh:// URL of the repository at the absolute path p.
func (s *SSHD) URL(p string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.User, s.Port, p)
}

// SSHKey returns a fresh Ed25519 key pair: the private key in OpenSSH's
// PEM form, and the public key.
func SSHKey(t testing.TB) (private string, public ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("testenv.SSHKey: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("testenv.SSHKey: %v", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("testenv.SSHKey: %v", err)
	}
	return string(pem.EncodeToMemory(block)), sp
}

// StartSSHD starts an sshd (`sshd -D -e -f <config>`) with its own
// configuration, generated host key and authorized client key in a temp
// dir: public-key login only (no password, no PAM), for the running user
// alone, forced through git-shell. It is stopped and its files removed
// when the test ends. The test fails (never skips) when sshd or git-shell
// is missing.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	bin := lookBinary(t, "sshd")
	gitShell := lookBinary(t, "git-shell")
	u, err := user.Current()
	if err != nil {
		t.Fatalf("testenv.StartSSHD: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd as root drops to an unprivileged child in this empty
		// directory, which Debian's service creates at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("testenv.StartSSHD: %v", err)
		}
	}
	dir := t.TempDir()
	clientKey, clientPub := SSHKey(t)
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("testenv.StartSSHD: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatalf("testenv.StartSSHD: %v", err)
	}
	hostPub, err := ssh.NewPublicKey(hostPriv.Public())
	if err != nil {
		t.Fatalf("testenv.StartSSHD: %v", err)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatalf("testenv.StartSSHD: %v", err)
		}
		return p
	}
	hostKeyPath := write("host_ed25519", string(pem.EncodeToMemory(block)))
	authKeys := write("authorized_keys", string(ssh.MarshalAuthorizedKey(clientPub)))

	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		cfg := write("sshd_config", strings.Join([]string{
			"Port " + strconv.Itoa(port),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKeyPath,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + authKeys,
			"AuthenticationMethods publickey",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"UsePAM no",
			// The key files live in a temp dir, not the user's ~/.ssh.
			"StrictModes no",
			"PermitRootLogin prohibit-password",
			"AllowUsers " + u.Username,
			"ForceCommand " + gitShell + ` -c "$SSH_ORIGINAL_COMMAND"`,
			"AllowTcpForwarding no",
			"AllowAgentForwarding no",
			"X11Forwarding no",
			"PermitTTY no",
			"PrintMotd no",
			"LogLevel VERBOSE",
			"",
		}, "\n"))
		logPath := filepath.Join(dir, "sshd.log")
		proc, err := startSSHDOn(bin, cfg, port, logPath)
		if err == nil {
			t.Cleanup(func() { proc.stop(syscall.SIGTERM, 10*time.Second) })
			return &SSHD{
				Port: port, User: u.Username, ClientKey: clientKey, HostKey: hostPub,
				KnownHosts: knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))}, hostPub),
			}
		}
		tail := logTail(logPath)
		if attempt < attempts && strings.Contains(tail, "in use") {
			continue
		}
		t.Fatalf("testenv.StartSSHD: %v\n%s", err, tail)
	}
}

// startSSHDOn starts sshd and waits until it greets on port.
func startSSHDOn(bin, cfg string, port int, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// sshd re-executes itself, which needs its absolute path.
	cmd := exec.Command(bin, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	proc, err := startProcess(cmd, nil, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		if proc.exited() {
			return nil, fmt.Errorf("sshd exited during start-up: %v", proc.err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "SSH-2.0-") {
				return proc, nil
			}
		}
		if time.Now().After(deadline) {
			proc.stop(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("sshd did not greet on %s within 15s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
