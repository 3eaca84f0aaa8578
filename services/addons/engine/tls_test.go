package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// testCA is a CA of its own for one test.
func testCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestLoadOrCreateCA: the CA is made once (its key 0600) and read back
// the same afterwards.
func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", fi, err)
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.CertPEM() != ca.CertPEM() || !again.key.Equal(ca.key) {
		t.Fatal("a second load made another CA")
	}
	b, _ := pem.Decode([]byte(ca.CertPEM()))
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !cert.IsCA || cert.NotAfter.Before(time.Now().Add(10*365*24*time.Hour)) {
		t.Fatalf("CA certificate: %v %v", cert.NotAfter, err)
	}
}

// TestPrepareTLSRenews: a start keeps a certificate that will do, and
// issues a new one when it nears its end, when the names change, and
// when the CA changed; TLS off removes the files.
func TestPrepareTLSRenews(t *testing.T) {
	ca := testCA(t)
	a := Addon{DataDir: filepath.Join(t.TempDir(), "data"), TLS: &TLS{CA: ca}}
	if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(a.DataDir, "tls", "server.crt")
	read := func() string {
		b, err := os.ReadFile(crt)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	now := time.Now()
	if err := prepareTLS(a, now); err != nil {
		t.Fatal(err)
	}
	first := read()
	if fi, err := os.Stat(filepath.Join(a.DataDir, "tls", "server.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server.key: %v %v", fi, err)
	}
	if err := prepareTLS(a, now.Add(time.Hour)); err != nil || read() != first {
		t.Fatalf("a valid certificate was replaced (%v)", err)
	}
	if err := prepareTLS(a, now.Add(serverValidity-renewBefore+time.Hour)); err != nil || read() == first {
		t.Fatalf("a certificate near its end was kept (%v)", err)
	}
	second := read()
	a.TLS.Hosts = []string{"db.example.test"}
	if err := prepareTLS(a, now); err != nil || read() == second {
		t.Fatalf("a certificate for other names was kept (%v)", err)
	}
	b, _ := pem.Decode([]byte(read()))
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "db.example.test"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	third := read()
	a.TLS.CA = testCA(t)
	if err := prepareTLS(a, now); err != nil || read() == third {
		t.Fatalf("a certificate of another CA was kept (%v)", err)
	}
	a.TLS = nil
	if err := prepareTLS(a, now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a.DataDir, "tls")); !os.IsNotExist(err) {
		t.Fatalf("TLS off left the files: %v", err)
	}
}

// TestTLS: with TLS on, each type's TCP port (as the process driver
// publishes it on 127.0.0.1) takes clients that verify the server's
// certificate against the CA, and refuses plaintext; the socket stays
// plain (the engine's own tools keep working); started again with TLS
// off, the same data takes plaintext TCP again.
func TestTLS(t *testing.T) {
	d := testDriver(t)
	ca := testCA(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca.CertPEM())) {
		t.Fatal("CA certificate")
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(ca.CertPEM()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := func(t *testing.T, id string) (string, string) {
		t.Helper()
		st, err := d.Status(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(st.Ports["db"])
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("published port %v: %v", st.Ports, err)
		}
		return host, port
	}
	// restart runs a's server again (TLS switched by the caller).
	restart := func(t *testing.T, e Engine, id string, a Addon) string {
		t.Helper()
		stopAddon(t, d, id)
		return startAddon(t, d, e, a)
	}
	creds := func(t *testing.T, e Engine, a Addon) {
		t.Helper()
		_, envs := e.Credentials(a)
		if envs["TLS_CA_CERT"] != ca.CertPEM() {
			t.Errorf("TLS_CA_CERT missing from the credentials")
		}
	}

	t.Run("postgresql", func(t *testing.T) {
		e, _ := Get(TypePostgreSQL)
		a := testAddon(t, e, "process")
		a.TLS = &TLS{CA: ca}
		id := startAddon(t, d, e, a)
		creds(t, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cfg, err := pgx.ParseConfig("postgres://" + a.User + ":" + a.Password + "@" + host + ":" + port + "/" + a.DBName + "?sslmode=verify-full&sslrootcert=" + caFile)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Fatalf("ssl %v %v", ssl, err)
		}
		conn.Close(ctx)
		// The URI of ExternalCredentials, with the CA as a file.
		sec, _ := ExternalCredentials(TypePostgreSQL, a, host, port)
		if c, err := pgx.Connect(ctx, sec["EXTERNAL_POSTGRES_URI"]+"&sslrootcert="+caFile); err != nil {
			t.Fatalf("EXTERNAL_POSTGRES_URI: %v", err)
		} else {
			c.Close(ctx)
		}
		// psql too, the way an operator would.
		cmd := exec.CommandContext(ctx, "psql", "-X", "-At", "-c", "SELECT 1", "postgresql://"+a.User+"@"+host+":"+port+"/"+a.DBName+"?sslmode=verify-full&sslrootcert="+caFile)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+a.Password)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Fatalf("psql verify-full: %v %s", err, out)
		}
		if c, err := pgx.Connect(ctx, "postgres://"+a.User+":"+a.Password+"@"+host+":"+port+"/"+a.DBName+"?sslmode=disable"); err == nil {
			c.Close(ctx)
			t.Fatal("a plaintext TCP connection was accepted with TLS on")
		}
		// Another CA's clients do not trust it.
		other := filepath.Join(t.TempDir(), "other.crt")
		if err := os.WriteFile(other, []byte(testCA(t).CertPEM()), 0o644); err != nil {
			t.Fatal(err)
		}
		if c, err := pgx.Connect(ctx, "postgres://"+a.User+":"+a.Password+"@"+host+":"+port+"/"+a.DBName+"?sslmode=verify-full&sslrootcert="+other); err == nil {
			c.Close(ctx)
			t.Fatal("a certificate was verified against another CA")
		}
		// The socket stays plain: the engine's tools work.
		if _, err := e.Check(ctx, d, id, a); err != nil {
			t.Fatal(err)
		}

		a.TLS = nil
		id = restart(t, e, id, a)
		host, port = addr(t, id)
		c, err := pgx.Connect(ctx, "postgres://"+a.User+":"+a.Password+"@"+host+":"+port+"/"+a.DBName+"?sslmode=disable")
		if err != nil {
			t.Fatalf("plaintext with TLS off: %v", err)
		}
		c.Close(ctx)
		if _, envs := e.Credentials(a); envs["TLS_CA_CERT"] != "" {
			t.Error("TLS_CA_CERT with TLS off")
		}
	})

	t.Run("redis", func(t *testing.T) {
		e, _ := Get(TypeRedis)
		a := testAddon(t, e, "process")
		a.TLS = &TLS{CA: ca}
		id := startAddon(t, d, e, a)
		creds(t, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := goredis.NewClient(&goredis.Options{Addr: host + ":" + port, Password: a.Password,
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}})
		defer c.Close()
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		sec, _ := ExternalCredentials(TypeRedis, a, host, port)
		opt, err := goredis.ParseURL(sec["EXTERNAL_REDIS_MASTER_URL"])
		if err != nil || opt.TLSConfig == nil {
			t.Fatalf("EXTERNAL_REDIS_MASTER_URL: %v", err)
		}
		opt.TLSConfig.RootCAs = pool
		u := goredis.NewClient(opt)
		defer u.Close()
		if v, err := u.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("through EXTERNAL_REDIS_MASTER_URL: %q %v", v, err)
		}
		plain := goredis.NewClient(&goredis.Options{Addr: host + ":" + port, Password: a.Password, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
		defer plain.Close()
		if err := plain.Ping(ctx).Err(); err == nil {
			t.Fatal("a plaintext TCP connection was accepted with TLS on")
		}
		if _, err := e.Check(ctx, d, id, a); err != nil {
			t.Fatal(err)
		}

		a.TLS = nil
		id = restart(t, e, id, a)
		host, port = addr(t, id)
		p2 := goredis.NewClient(&goredis.Options{Addr: host + ":" + port, Password: a.Password})
		defer p2.Close()
		if v, err := p2.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("plaintext with TLS off: %q %v", v, err)
		}
	})

	t.Run("mysql", func(t *testing.T) {
		e, _ := Get(TypeMySQL)
		a := testAddon(t, e, "process")
		a.TLS = &TLS{CA: ca}
		id := startAddon(t, d, e, a)
		creds(t, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		client := func(args ...string) (string, error) {
			cmd := exec.CommandContext(ctx, "mariadb", append([]string{"--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", a.User, "-N", "-B"}, args...)...)
			cmd.Env = []string{"MYSQL_PWD=" + a.Password}
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		out, err := client("--ssl-ca="+caFile, "--ssl-verify-server-cert", a.DBName, "-e", "SHOW STATUS LIKE 'Ssl_version'")
		if err != nil || !strings.Contains(out, "TLSv1.") {
			t.Fatalf("verified TLS: %v: %s", err, out)
		}
		if out, err := client("--skip-ssl", a.DBName, "-e", "SELECT 1"); err == nil {
			t.Fatalf("a plaintext TCP connection was accepted with TLS on: %s", out)
		}
		if _, err := e.Check(ctx, d, id, a); err != nil {
			t.Fatal(err)
		}

		a.TLS = nil
		id = restart(t, e, id, a)
		host, port = addr(t, id)
		if out, err := client("--skip-ssl", a.DBName, "-e", "SELECT 1"); err != nil || out != "1" {
			t.Fatalf("plaintext with TLS off: %v: %s", err, out)
		}
	})
}

// tlsProbe connects to a server of type typ at host:port as a's app
// user twice: verifying its certificate against the CA in caFile (and
// pool), then in plaintext; it returns each attempt's error.
func tlsProbe(t *testing.T, typ string, a Addon, host, port, caFile string, pool *x509.CertPool) (verified, plaintext error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch typ {
	case TypePostgreSQL:
		sec, _ := ExternalCredentials(typ, a, host, port)
		if c, err := pgx.Connect(ctx, sec["EXTERNAL_POSTGRES_URI"]+"&sslrootcert="+caFile); err != nil {
			verified = err
		} else {
			c.Close(ctx)
		}
		if c, err := pgx.Connect(ctx, "postgres://"+a.User+":"+a.Password+"@"+host+":"+port+"/"+a.DBName+"?sslmode=disable"); err != nil {
			plaintext = err
		} else {
			c.Close(ctx)
		}
	case TypeRedis:
		c := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort(host, port), Password: a.Password,
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}})
		verified = c.Ping(ctx).Err()
		c.Close()
		p := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort(host, port), Password: a.Password, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
		plaintext = p.Ping(ctx).Err()
		p.Close()
	case TypeMySQL:
		client := func(args ...string) error {
			cmd := exec.CommandContext(ctx, "mariadb", append([]string{"--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", a.User, "-N", "-B"}, args...)...)
			cmd.Env = []string{"MYSQL_PWD=" + a.Password}
			out, err := cmd.CombinedOutput()
			if err == nil && !strings.Contains(string(out), "TLSv1.") && slices.Contains(args, "--ssl-verify-server-cert") {
				return fmt.Errorf("no TLS: %s", out)
			}
			return err
		}
		verified = client("--ssl-ca="+caFile, "--ssl-verify-server-cert", a.DBName, "-e", "SHOW STATUS LIKE 'Ssl_version'")
		plaintext = client("--skip-ssl", a.DBName, "-e", "SELECT 1")
	}
	return verified, plaintext
}

// TestDockerTLS: on the docker driver (Podman), each type's server with
// TLS on reads the certificate given to the container's user (999),
// takes verified TLS on its published port and refuses plaintext; its
// socket stays plain.
func TestDockerTLS(t *testing.T) {
	host := testenv.Podman(t)
	d, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ca := testCA(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ca.CertPEM()))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(ca.CertPEM()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{TypePostgreSQL, TypeRedis, TypeMySQL} {
		t.Run(typ, func(t *testing.T) {
			e, _ := Get(typ)
			versions := e.Info("process").Versions
			if len(versions) == 0 {
				t.Fatalf("no %s on this machine to build an image of", typ)
			}
			a := testAddon(t, e, "docker")
			a.Version = versions[0]
			a.Image = testenv.BuildHostImage(t, host, "localhost/slipway-host-"+typ+":"+a.Version, hostImagePaths(t, typ, a.Version)...)
			a.TLS = &TLS{CA: ca}
			id := startAddon(t, d, e, a)
			st, err := d.Status(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			h, port, err := net.SplitHostPort(st.Ports["db"])
			if err != nil || h != "127.0.0.1" {
				t.Fatalf("published port %v %v", st.Ports, err)
			}
			verified, plaintext := tlsProbe(t, typ, a, h, port, caFile, pool)
			if verified != nil {
				t.Fatalf("verified TLS: %v", verified)
			}
			if plaintext == nil {
				t.Fatal("a plaintext TCP connection was accepted with TLS on")
			}
			if _, err := e.Check(ctxT(t), d, id, a); err != nil {
				t.Fatal(err)
			}
		})
	}
}
