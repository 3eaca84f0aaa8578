package objstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/httpserver"
)

// Errors of URLSigner.Verify. The handler answers both with the same 403,
// so a holder of a forged link learns nothing about why it failed.
var (
	// ErrBadSignature: the link was not made by this signer, or was
	// changed after (another key, a later expiry).
	ErrBadSignature = errors.New("objstore: download link signature is invalid")
	// ErrExpired: the link was genuine but its time is up.
	ErrExpired = errors.New("objstore: download link has expired")
)

// Query parameters of a signed link.
const (
	paramKey       = "key"
	paramExpires   = "expires"
	paramSignature = "signature"
)

// URLSigner makes and checks the local store's download links: base URL
// plus ?key=...&expires=<unix seconds>&signature=<HMAC-SHA256>, the MAC
// taken over the key and the expiry under a secret only Slipway holds. The
// link is the credential (like an S3 presigned URL): no session or token is
// needed to use it, and it stops working at expires.
type URLSigner struct {
	secret []byte
	base   string
	now    func() time.Time
}

// NewURLSigner returns a signer for links under base (the absolute URL the
// local store's Handler is reachable at through the gateway, e.g.
// "https://slipway.example.com/v1/addon-backup-downloads"). secret must
// hold at least 32 bytes of entropy.
func NewURLSigner(secret []byte, base string) (*URLSigner, error) {
	if len(secret) < 32 {
		return nil, errors.New("objstore: URL signing secret must be at least 32 bytes")
	}
	u, err := url.Parse(base)
	if err != nil || !u.IsAbs() || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("objstore: download base URL %q must be absolute, without query or fragment", base)
	}
	return &URLSigner{secret: append([]byte(nil), secret...), base: base, now: time.Now}, nil
}

// Sign returns the link to key valid until expires (to the second).
func (s *URLSigner) Sign(key string, expires time.Time) string {
	exp := expires.Unix()
	q := url.Values{}
	q.Set(paramKey, key)
	q.Set(paramExpires, strconv.FormatInt(exp, 10))
	q.Set(paramSignature, base64.RawURLEncoding.EncodeToString(s.mac(key, exp)))
	return s.base + "?" + q.Encode()
}

// Verify checks a link's query and returns the key it grants, or
// ErrBadSignature or ErrExpired. The MAC is compared in constant time and
// checked before the expiry, so a forger cannot tell a wrong MAC from an
// old one.
func (s *URLSigner) Verify(q url.Values) (string, error) {
	key, expStr, sig := q.Get(paramKey), q.Get(paramExpires), q.Get(paramSignature)
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || key == "" {
		return "", ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(key, exp)) {
		return "", ErrBadSignature
	}
	if !s.now().Before(time.Unix(exp, 0)) {
		return "", ErrExpired
	}
	return key, nil
}

// mac is HMAC-SHA256 over a versioned, length-delimited message, so no
// (key, expiry) pair can be re-split into another.
func (s *URLSigner) mac(key string, exp int64) []byte {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "slipway-objstore-download/v1\n%d\n%s\n%d", len(key), key, exp)
	return m.Sum(nil)
}

// Handler serves the objects of l to holders of a link from DownloadURL:
// GET or HEAD with the link's query, answered with the object (ranges
// supported, as a download) or an error in Northflank's envelope
// (apierr.WriteHTTP): 403 for
// a forged or expired link, 404 once the object is gone. The addons
// component mounts it through the gateway. Without a signer every request
// is 404.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			apierr.WriteHTTP(w, http.StatusMethodNotAllowed, apierr.ReasonMethodNotAllowed, "download links accept GET and HEAD only", nil)
			return
		}
		if l.signer == nil {
			apierr.WriteHTTP(w, http.StatusNotFound, apierr.ReasonNotFound, "this install serves no download links", nil)
			return
		}
		key, err := l.signer.Verify(r.URL.Query())
		if err != nil {
			apierr.WriteHTTP(w, http.StatusForbidden, apierr.ReasonDownloadLinkInvalid, "the download link is invalid or has expired; ask for a new one", nil)
			return
		}
		rc, err := l.Get(r.Context(), key)
		if err != nil {
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidKey) {
				apierr.WriteHTTP(w, http.StatusNotFound, apierr.ReasonNotFound, "the backup is no longer stored", nil)
				return
			}
			apierr.WriteHTTP(w, http.StatusInternalServerError, apierr.ReasonInternal, "the backup could not be read", nil)
			return
		}
		defer rc.Close()
		f, ok := rc.(http.File) // Local.Get returns the *os.File
		if !ok {
			apierr.WriteHTTP(w, http.StatusInternalServerError, apierr.ReasonInternal, "the backup could not be read", nil)
			return
		}
		st, err := f.Stat()
		if err != nil {
			apierr.WriteHTTP(w, http.StatusInternalServerError, apierr.ReasonInternal, "the backup could not be read", nil)
			return
		}
		// A backup can take long to send: the connection's deadlines are
		// the client's business here (best effort; see httpserver.Stream).
		_ = httpserver.Stream(w)
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(key)}))
		h.Set("Cache-Control", "private, no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", st.ModTime(), f)
	})
}
