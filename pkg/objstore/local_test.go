package objstore_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/objstore"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newLocal is a local store in a temp dir whose download links are served
// by its Handler on a loopback test server.
func newLocal(t *testing.T) (*objstore.Local, string) {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	signer, err := objstore.NewURLSigner(testSecret, srv.URL+"/v1/backup-downloads")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "addons", "backups")
	st, err := objstore.NewLocal(dir, signer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h = st.Handler()
	return st, dir
}

func TestLocalContract(t *testing.T) {
	st, _ := newLocal(t)
	testContract(t, st)
}

func TestLocalFailedUploadLeavesNoFile(t *testing.T) {
	st, dir := newLocal(t)
	if _, _, err := st.Put(context.Background(), "a/b/obj", &failingReader{n: 3 << 20}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	// Not even the temporary file is left behind.
	var files []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("files left after a failed Put: %v", files)
	}
}

func TestLocalInFlightUploadIsInvisible(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	// A temp file as a crashed upload would leave it: never listed.
	if err := os.WriteFile(filepath.Join(dir, ".slipway-upload-deadbeef"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestLocalKeysStayInsideTheDirectory(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symbolic link planted in the store does not lead out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "link/secret"); err == nil {
		t.Fatal("Get followed a symlink out of the store")
	}
	if _, _, err := st.Put(ctx, "link/written", strings.NewReader("x")); err == nil {
		t.Fatal("Put followed a symlink out of the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "written")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written outside the store: %v", err)
	}
	if _, _, err := st.Put(ctx, "../escape", strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put(../escape): %v", err)
	}
}

func TestLocalDeleteRemovesEmptyDirectories(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	for _, k := range []string{"p/a/1", "p/b/1"} {
		if _, _, err := st.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "p/a/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p", "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directory kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p", "b", "1")); err != nil {
		t.Fatalf("sibling object gone: %v", err)
	}
}

func TestURLSigner(t *testing.T) {
	s, err := objstore.NewURLSigner(testSecret, "https://slipway.example/v1/backup-downloads")
	if err != nil {
		t.Fatal(err)
	}
	link := s.Sign("p/a/b.dump", time.Now().Add(time.Minute))
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(link, "https://slipway.example/v1/backup-downloads?") {
		t.Fatalf("link %q: %v", link, err)
	}
	if key, err := s.Verify(u.Query()); err != nil || key != "p/a/b.dump" {
		t.Fatalf("Verify = %q, %v", key, err)
	}
	tamper := func(name, value string) url.Values {
		q := u.Query()
		q.Set(name, value)
		return q
	}
	for name, q := range map[string]url.Values{
		"other key":       tamper("key", "p/a/c.dump"),
		"later expiry":    tamper("expires", "99999999999"),
		"bad signature":   tamper("signature", "AAAA"),
		"no signature":    tamper("signature", ""),
		"no expiry":       tamper("expires", ""),
		"other signer":    mustParse(t, mustSigner(t, []byte("another-secret-of-at-least-32-bytes!")).Sign("p/a/b.dump", time.Now().Add(time.Minute))),
		"empty query":     {},
		"signature of ''": tamper("key", ""),
	} {
		if _, err := s.Verify(q); !errors.Is(err, objstore.ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}
	old := mustParse(t, s.Sign("p/a/b.dump", time.Now().Add(-time.Second)))
	if _, err := s.Verify(old); !errors.Is(err, objstore.ErrExpired) {
		t.Errorf("expired: Verify = %v", err)
	}
	if _, err := objstore.NewURLSigner([]byte("short"), "https://x/"); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := objstore.NewURLSigner(testSecret, "/relative"); err == nil {
		t.Error("a relative base was accepted")
	}
}

func mustSigner(t *testing.T, secret []byte) *objstore.URLSigner {
	t.Helper()
	s, err := objstore.NewURLSigner(secret, "https://slipway.example/v1/backup-downloads")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, link string) url.Values {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestLocalHandler(t *testing.T) {
	st, _ := newLocal(t)
	ctx := context.Background()
	if _, _, err := st.Put(ctx, "p/a/backup.dump", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	link, err := st.DownloadURL(ctx, "p/a/backup.dump", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Disposition") != `attachment; filename=backup.dump` {
		t.Fatalf("range GET = %d, %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	resp, err = http.Post(link, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	// Deleted after the link was made: 404, not a stale success.
	if err := st.Delete(ctx, "p/a/backup.dump"); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, link); code != http.StatusNotFound || !strings.Contains(string(body), `"status":404`) {
		t.Fatalf("GET after delete = %d %s", code, body)
	}
	// A link to a refused key, properly signed, still reads nothing.
	bad := strings.Replace(link, "p%2Fa%2Fbackup.dump", "..%2Fx", 1)
	if code, body := httpGet(t, bad); code != http.StatusForbidden || !strings.Contains(string(body), `"id":"DOWNLOAD_LINK_INVALID"`) {
		t.Fatalf("GET of a re-keyed link = %d %s", code, body)
	}
}

func TestLocalWithoutSigner(t *testing.T) {
	st, err := objstore.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, _, err := st.Put(ctx, "x", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DownloadURL(ctx, "x", time.Now().Add(time.Minute)); !errors.Is(err, objstore.ErrNoDownloadURL) {
		t.Fatalf("DownloadURL without signer: %v", err)
	}
	rec := httptest.NewRecorder()
	st.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?key=x", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("Handler without signer = %d", rec.Code)
	}
}
