package engine

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// TLS: with Addon.TLS set, a server's TCP listener takes TLS connections
// only (PostgreSQL: ssl=on and hostssl lines in pg_hba.conf; Redis:
// tls-port and port 0; MariaDB: ssl-cert/ssl-key and
// require_secure_transport). The unix socket stays plain: it never leaves
// the machine, and MariaDB counts it as a secure transport. The server's
// certificate, issued by the install's CA (LoadOrCreateCA) for
// TLS.Hosts, is written by Spec into DataDir/tls (TLSMount in the
// server), where the server's user owns it, and issued again at a start
// when it is missing, for other hosts, from another CA, or within
// renewBefore of its expiry. On docker the data is a volume the host does
// not write, so the files are in the host directory TLSDir instead, given
// to the server's user and mounted read-only at DockerTLSMount. A server's
// script finds them in $SLIPWAY_TLS_DIR.

// TLSMount is where a server on the process driver finds its certificate
// (server.crt), key (server.key) and the CA's certificate (ca.crt).
const TLSMount = DataMount + "/tls"

// DockerTLSMount is where a server on the docker driver finds them.
const DockerTLSMount = "/run/addon-tls"

// tlsDir is the host directory of a's TLS files.
func tlsDir(a Addon) string {
	if a.Driver == driverDocker {
		return a.TLSDir
	}
	return filepath.Join(a.DataDir, "tls")
}

const (
	// caValidity is the CA's lifetime: long, since every client trusts it.
	caValidity = 20 * 365 * 24 * time.Hour
	// serverValidity is a server certificate's; renewBefore how long
	// before its end a start issues a new one.
	serverValidity = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// CA is the install's certificate authority for addons: an ECDSA P-256
// key and a self-signed certificate that clients verify servers with.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// TLS turns an addon's TLS on: the CA that issues its certificate and the
// names the certificate holds (DefaultTLSHosts and the operator's).
type TLS struct {
	CA    *CA
	Hosts []string
}

// DefaultTLSHosts are the names every server certificate holds: the
// host's loopback, where the driver publishes the port.
var DefaultTLSHosts = []string{"127.0.0.1", "::1", "localhost"}

// CertPEM is the CA's certificate, PEM-encoded: what a client verifies a
// server with (the TLS_CA_CERT credential).
func (c *CA) CertPEM() string { return string(c.pem) }

// LoadOrCreateCA reads the CA from dir (ca.crt, ca.key), or creates it
// there when neither exists: dir 0700, the key 0600.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	if errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
		return createCA(dir, certPath, keyPath)
	}
	if cerr != nil || kerr != nil {
		return nil, fmt.Errorf("engine: reading the addons CA in %s: %w", dir, errors.Join(cerr, kerr))
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("engine: the addons CA in %s is not PEM", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("engine: the addons CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("engine: the addons CA key: %w", err)
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

func createCA(dir, certPath, keyPath string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("engine: addons CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("engine: addons CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Slipway addons CA", Organization: []string{"Slipway"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("engine: addons CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a crash between the two leaves a key without a
	// certificate, which the next start reports instead of overwriting.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("engine: certificate serial: %w", err)
	}
	return n, nil
}

// issue returns a server certificate for hosts (IP addresses and DNS
// names) and its key, PEM-encoded.
func (c *CA) issue(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: server key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// tlsHosts are the names of a's certificate, the defaults first.
func tlsHosts(a Addon) []string {
	hosts := slices.Clone(DefaultTLSHosts)
	for _, h := range a.TLS.Hosts {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// tlsOn reports whether a's server takes TLS on TCP (a verification
// instance has no TCP port).
func tlsOn(a Addon) bool { return a.TLS != nil && a.TLS.CA != nil && !a.Verify }

// prepareTLS writes a's certificate into tlsDir(a) when TLS is on and
// the current one will not do (see the TLS doc above); with TLS off it
// removes the directory. It runs before the directories are given to
// the server's user.
func prepareTLS(a Addon, now time.Time) error {
	dir := tlsDir(a)
	if a.Verify {
		return nil // shares nothing with the server's directory
	}
	if !tlsOn(a) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("engine: removing the TLS files: %w", err)
		}
		return nil
	}
	hosts := tlsHosts(a)
	if certValid(dir, a.TLS.CA, hosts, now) {
		return nil
	}
	certPEM, keyPEM, err := a.TLS.CA.issue(hosts, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("engine: TLS directory: %w", err)
	}
	// PostgreSQL refuses a key readable by others than its owner.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"server.key", keyPEM, 0o600}, {"server.crt", certPEM, 0o644}, {"ca.crt", a.TLS.CA.pem, 0o644}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// certValid reports whether dir holds a key and a certificate of ca for
// exactly hosts, valid for longer than renewBefore.
func certValid(dir string, ca *CA, hosts []string, now time.Time) bool {
	certPEM, err := os.ReadFile(filepath.Join(dir, "server.crt"))
	if err != nil {
		return false
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil || !bytes.Equal(caPEM, ca.pem) {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "server.key")); err != nil {
		return false
	}
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return false
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || cert.CheckSignatureFrom(ca.cert) != nil || now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	var have []string
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	have = append(have, cert.DNSNames...)
	want := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		want = append(want, h)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("engine: writing %s: %w", filepath.Base(path), err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("engine: writing %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("engine: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// tlsEnvs adds the CA's certificate to a's envs when TLS is on.
func tlsEnvs(a Addon, envs map[string]string) {
	if tlsOn(a) {
		envs["TLS_CA_CERT"] = a.TLS.CA.CertPEM()
	}
}

// ExternalCredentials are the connection values of the TCP port of a (of type typ) as the
// driver publishes it (host, port), under EXTERNAL_* keys: the address
// always, and with TLS on URIs that ask the client to verify the server
// against TLS_CA_CERT (PostgreSQL sslmode=verify-full, rediss://, MariaDB
// ssl-mode=VERIFY_IDENTITY). Without TLS there are no URIs: external
// access needs TLS (the addons service refuses it otherwise).
func ExternalCredentials(typ string, a Addon, host, port string) (secrets, envs map[string]string) {
	secrets, envs = map[string]string{}, map[string]string{"EXTERNAL_HOST": host, "EXTERNAL_PORT": port}
	if !tlsOn(a) {
		return secrets, envs
	}
	hostPort := net.JoinHostPort(host, port)
	switch typ {
	case TypePostgreSQL:
		uri := func(user, pass string) string {
			u := url.URL{Scheme: "postgresql", User: url.UserPassword(user, pass), Host: hostPort, Path: "/" + a.DBName, RawQuery: "sslmode=verify-full"}
			return u.String()
		}
		secrets["EXTERNAL_POSTGRES_URI"] = uri(a.User, a.Password)
		secrets["EXTERNAL_POSTGRES_URI_ADMIN"] = uri(a.AdminUser, a.AdminPassword)
	case TypeRedis:
		u := url.URL{Scheme: "rediss", User: url.UserPassword("default", a.Password), Host: hostPort}
		secrets["EXTERNAL_REDIS_MASTER_URL"] = u.String()
	case TypeMySQL:
		uri := func(user, pass string) string {
			u := url.URL{Scheme: "mysql", User: url.UserPassword(user, pass), Host: hostPort, Path: "/" + a.DBName, RawQuery: "ssl-mode=VERIFY_IDENTITY"}
			return u.String()
		}
		secrets["EXTERNAL_MYSQL_URI"] = uri(a.User, a.Password)
		secrets["EXTERNAL_MYSQL_URI_ADMIN"] = uri(a.AdminUser, a.AdminPassword)
	}
	return secrets, envs
}

// tlsEnv adds SLIPWAY_TLS=1 and SLIPWAY_TLS_DIR (where the files are) to
// a server's environment when TLS is on: its script configures the TCP
// listener from them.
func tlsEnv(a Addon, env map[string]string) map[string]string {
	if tlsOn(a) {
		env["SLIPWAY_TLS"] = "1"
		env["SLIPWAY_TLS_DIR"] = TLSMount
		if a.Driver == driverDocker {
			env["SLIPWAY_TLS_DIR"] = DockerTLSMount
		}
	}
	return env
}
