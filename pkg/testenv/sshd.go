package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
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

// SSHD is a throwaway OpenSSH server on a loopback address (127.0.0.1
// unless SSHDOnPort says otherwise) that serves git over ssh, as a
// self-hosted git server does: every session runs through git-shell, so
// a client may fetch and push but gets no shell.
type SSHD struct {
	// Host is the loopback address the server listens on.
	Host string
	// Port is the server's port on Host.
	Port int
	// User is the account clients log in as: the user running the test
	// (root on the CI machine), the only one a test may serve as.
	User string
	// ClientKey is the OpenSSH private key (PEM) the server accepts.
	ClientKey string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// KnownHosts is a known_hosts line for the server's host key, as
	// `ssh-keyscan -p PORT HOST` prints it ("[HOST]:PORT", or HOST alone
	// on port 22).
	KnownHosts string
}

// URL is the ssh:// URL of the repository at the absolute path p.
func (s *SSHD) URL(p string) string {
	return fmt.Sprintf("ssh://%s@%s%s", s.User, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), p)
}

// KnownHostsFor is a known_hosts line for the server's host key under
// another name of it (a host name that resolves to Host), on its port.
func (s *SSHD) KnownHostsFor(name string) string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(name, strconv.Itoa(s.Port)))}, s.HostKey)
}

// SSHDOption changes where StartSSHD's server listens.
type SSHDOption func(*sshdListen)

type sshdListen struct{ port int }

// SSHDOnPort makes the server listen on a fixed port (22, for the URLs
// that cannot name one, such as git's scp-like user@host:path) of a
// loopback address 127.x.y.z picked at random among those where that port
// is free: all of 127.0.0.0/8 is loopback on Linux, so this works beside
// a real sshd on 127.0.0.1:22, though not beside one listening on every
// address (0.0.0.0:22), when the test fails saying so. A port below 1024
// needs root (as CI runs) or CAP_NET_BIND_SERVICE.
func SSHDOnPort(port int) SSHDOption {
	return func(l *sshdListen) { l.port = port }
}

// loopbackWithFreePort returns a random loopback address other than
// 127.0.0.1 on which port can be listened on, or an error that says why
// none could be found.
func loopbackWithFreePort(port int) (string, error) {
	var last error
	for range 32 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if b == [3]byte{0, 0, 1} || b == [3]byte{255, 255, 255} || b == [3]byte{} {
			continue
		}
		host := fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return host, nil
		}
		if errors.Is(err, syscall.EACCES) {
			return "", fmt.Errorf("listening on port %d needs root or CAP_NET_BIND_SERVICE: %w", port, err)
		}
		last = err
	}
	return "", fmt.Errorf("port %d is in use on every loopback address tried (a server listening on 0.0.0.0:%d or [::]:%d takes it on all of them; `ss -ltnp` shows which): %w", port, port, port, last)
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
// alone, forced through git-shell. It listens on a free port of
// 127.0.0.1, or where an option says. It is stopped and its files removed
// when the test ends. The test fails (never skips) when sshd or git-shell
// is missing, or the port asked for cannot be had.
func StartSSHD(t testing.TB, opts ...SSHDOption) *SSHD {
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

	var listen sshdListen
	for _, o := range opts {
		o(&listen)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		host, port := "127.0.0.1", listen.port
		if port == 0 {
			port = FreePort(t)
		} else if host, err = loopbackWithFreePort(port); err != nil {
			t.Fatalf("testenv.StartSSHD: %v", err)
		}
		cfg := write("sshd_config", strings.Join([]string{
			"Port " + strconv.Itoa(port),
			"ListenAddress " + host,
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
		proc, err := startSSHDOn(bin, cfg, net.JoinHostPort(host, strconv.Itoa(port)), logPath)
		if err == nil {
			t.Cleanup(func() { proc.stop(syscall.SIGTERM, 10*time.Second) })
			s := &SSHD{Host: host, Port: port, User: u.Username, ClientKey: clientKey, HostKey: hostPub}
			s.KnownHosts = s.KnownHostsFor(host)
			return s
		}
		tail := logTail(logPath)
		if attempt < attempts && strings.Contains(tail, "in use") {
			continue
		}
		t.Fatalf("testenv.StartSSHD: %v\n%s", err, tail)
	}
}

// startSSHDOn starts sshd and waits until it greets on addr.
func startSSHDOn(bin, cfg, addr, logPath string) (*process, error) {
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
