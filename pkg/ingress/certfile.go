package ingress

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often a CertFile looks whether its files
// changed: a renewed certificate (certbot, cert-manager, a cron job) is
// served within that long, with no restart.
const certCheckInterval = 10 * time.Second

// CertFile serves a certificate and key kept in PEM files, reloading them
// when they change. A pair that fails to load keeps the last good one
// serving (and the failure is returned by Reload, for the caller to log).
type CertFile struct {
	certPath, keyPath string

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
	now       func() time.Time
}

// LoadCertFile loads the pair; an unreadable or invalid pair is an error
// here, at start-up, where an operator sees it.
func LoadCertFile(certPath, keyPath string) (*CertFile, error) {
	c := &CertFile{certPath: certPath, keyPath: keyPath, now: time.Now}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload loads the pair now if either file changed since the last load.
func (c *CertFile) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload()
}

func (c *CertFile) reload() error {
	c.checkedAt = c.now()
	ci, err := os.Stat(c.certPath)
	if err != nil {
		return fmt.Errorf("ingress TLS certificate: %w", err)
	}
	ki, err := os.Stat(c.keyPath)
	if err != nil {
		return fmt.Errorf("ingress TLS key: %w", err)
	}
	if c.cert != nil && ci.ModTime().Equal(c.certMod) && ki.ModTime().Equal(c.keyMod) {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("ingress TLS certificate and key: %w", err)
	}
	c.cert, c.certMod, c.keyMod = &pair, ci.ModTime(), ki.ModTime()
	return nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair, looked
// at again at most every certCheckInterval.
func (c *CertFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.checkedAt) >= certCheckInterval {
		_ = c.reload() // a bad renewal keeps the last good pair serving
	}
	return c.cert, nil
}

// TLSConfig is a server configuration serving the pair, HTTP/2 and
// HTTP/1.1 by ALPN, TLS 1.2 at least.
func (c *CertFile) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: c.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
