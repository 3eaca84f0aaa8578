package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// Verify checks that the webhook was sent by someone who knows secret:
//
//   - GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
//     the body under the secret (the SHA-1 X-Hub-Signature is not
//     accepted);
//   - Gitea and Forgejo: X-Gitea-Signature (X-Forgejo-Signature) is the
//     bare hex HMAC-SHA256, or X-Hub-Signature-256 as GitHub's;
//   - GitLab: X-Gitlab-Token is the secret itself.
//
// A form-encoded body may be signed as sent (GitHub) or as the JSON of its
// payload field (Gitea); either is accepted, as both need the secret. All
// comparisons take the same time whatever the inputs (hmac.Equal; GitLab's
// token is compared through its SHA-256, so not even its length shows).
// An empty secret verifies nothing: a service with no webhook secret
// accepts no webhook. Failures are ErrSignature.
func (d Delivery) Verify(h http.Header, body []byte, secret string) error {
	if secret == "" {
		return errorf(ErrSignature, "no webhook secret is set for this service")
	}
	switch d.Provider {
	case GitLab:
		token := h.Get("X-Gitlab-Token")
		if token == "" {
			return errorf(ErrSignature, "the X-Gitlab-Token header is missing")
		}
		a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
		if !hmac.Equal(a[:], b[:]) {
			return ErrSignature
		}
		return nil
	case Gitea:
		if sig := first(h, "X-Gitea-Signature", "X-Forgejo-Signature"); sig != "" {
			return checkMAC(sig, body, h, secret)
		}
		fallthrough
	default:
		sig := h.Get("X-Hub-Signature-256")
		if sig == "" {
			return errorf(ErrSignature, "the X-Hub-Signature-256 header is missing")
		}
		hexMAC, ok := strings.CutPrefix(sig, "sha256=")
		if !ok {
			return ErrSignature
		}
		return checkMAC(hexMAC, body, h, secret)
	}
}

// checkMAC compares a hex HMAC-SHA256 against the body's (and, for a form,
// against its payload's).
func checkMAC(hexMAC string, body []byte, h http.Header, secret string) error {
	got, err := hex.DecodeString(strings.TrimSpace(hexMAC))
	if err != nil || len(got) != sha256.Size {
		return ErrSignature
	}
	signed := [][]byte{body}
	if isForm(h) {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("payload") != "" {
			signed = append(signed, []byte(v.Get("payload")))
		}
	}
	ok := false
	for _, b := range signed {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(b)
		// Every candidate is computed, so the time does not say which
		// one matched.
		if hmac.Equal(got, mac.Sum(nil)) {
			ok = true
		}
	}
	if !ok {
		return ErrSignature
	}
	return nil
}
