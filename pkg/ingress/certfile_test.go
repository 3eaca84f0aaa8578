package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for name and its key.
func writePair(t *testing.T, dir, name string, serial int64) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func serial(t *testing.T, c *tls.Certificate) int64 {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.SerialNumber.Int64()
}

func TestCertFileReloads(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := writePair(t, dir, "*.apps.example", 1)
	c, err := LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.now = func() time.Time { return now }
	got, _ := c.GetCertificate(nil)
	if serial(t, got) != 1 {
		t.Fatalf("serial %d, want 1", serial(t, got))
	}

	// A renewal is served once the check interval has passed.
	writePair(t, dir, "*.apps.example", 2)
	later := time.Now().Add(time.Second) // a distinct mtime
	_ = os.Chtimes(certPath, later, later)
	_ = os.Chtimes(keyPath, later, later)
	if got, _ := c.GetCertificate(nil); serial(t, got) != 1 {
		t.Fatalf("reloaded before the interval: serial %d", serial(t, got))
	}
	now = now.Add(certCheckInterval)
	if got, _ := c.GetCertificate(nil); serial(t, got) != 2 {
		t.Fatalf("after the interval: serial %d, want 2", serial(t, got))
	}

	// A broken renewal keeps the last good pair serving.
	if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	evenLater := later.Add(time.Second)
	_ = os.Chtimes(keyPath, evenLater, evenLater)
	now = now.Add(certCheckInterval)
	if got, _ := c.GetCertificate(nil); got == nil || serial(t, got) != 2 {
		t.Fatalf("a broken renewal replaced the good pair: %v", got)
	}
	if err := c.Reload(); err == nil {
		t.Fatal("Reload of a broken pair: no error")
	}
}

func TestLoadCertFileRefusesBadPairs(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := writePair(t, dir, "x.example", 1)
	if _, err := LoadCertFile(certPath, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing key: no error")
	}
	other := t.TempDir()
	_, otherKey := writePair(t, other, "y.example", 2)
	if _, err := LoadCertFile(certPath, otherKey); err == nil {
		t.Error("a key of another certificate: no error")
	}
	_ = keyPath
}
