package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIngressTLS: with a certificate and key configured, the ingress
// speaks HTTPS (HTTP/2 by ALPN) with that certificate, chosen by the
// service's host name, and GET …/ports shows https:// URLs.
func TestIngressTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "*.apps.test"}, DNSNames: []string{"*.apps.test"},
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
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}

	inst := startSlipway(t, "SLIPWAY_INGRESS_DOMAIN=apps.test", "SLIPWAY_INGRESS_TLS_CERT="+certPath, "SLIPWAY_INGRESS_TLS_KEY="+keyPath)
	base := inst.URL
	callJSON(t, "POST", base+"/v1/projects", `{"name":"tls"}`).data(t)
	callJSON(t, "POST", base+"/v1/projects/tls/services/deployment", `{"name":"web","deployment":{"instances":1,"docker":{"configType":"customCommand",
		"customCommand":"sh -c 'mkdir -p /tmp/www && echo secure > /tmp/www/index.html && exec busybox httpd -f -p $PORT -h /tmp/www'"}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}]}`).data(t)
	p := callJSON(t, "GET", base+"/v1/projects/tls/services/web/ports", "").data(t)["ports"].([]any)[0].(map[string]any)
	url, _ := p["dns"].(string)
	host, port, ok := strings.Cut(strings.TrimPrefix(url, "https://"), ":")
	if !strings.HasPrefix(url, "https://") || host != "p01--web--tls.apps.test" || !ok {
		t.Fatalf("port URL %q, want https://p01--web--tls.apps.test:<port>", url)
	}

	roots := x509.NewCertPool()
	roots.AddCert(mustParse(t, der))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		ForceAttemptHTTP2: true,
		// The host name is not in DNS: connect to loopback, verify the name.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if strings.TrimSpace(string(body)) != "secure" || resp.ProtoMajor != 2 {
					t.Fatalf("through HTTPS: %s %q", resp.Proto, body)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through HTTPS: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Plain HTTP on the TLS listener gets no service.
	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served on the TLS ingress")
		}
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
