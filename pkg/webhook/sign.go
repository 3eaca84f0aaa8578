// Package webhook signs, sends and renders Slipway's outgoing webhooks:
// Standard Webhooks signatures (https://www.standardwebhooks.com/), a
// Sender that POSTs one attempt under netguard's address rule with a
// bounded time and response size, the back-off between attempts, and the
// message formats of the chat platforms a notification may go to. It
// knows nothing of which events exist or who subscribes to them.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	// HeaderID is the message id, the same on every attempt, for the
	// receiver to drop duplicates.
	HeaderID = "webhook-id"
	// HeaderTimestamp is the attempt's time, in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature is one or more space-separated "v1,<base64>"
	// signatures.
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a base64 secret in the Standard Webhooks format.
const secretPrefix = "whsec_"

// DefaultTolerance is how far a message's timestamp may be from the
// receiver's clock, the specification's recommendation.
const DefaultTolerance = 5 * time.Minute

// SigningKey returns the HMAC key of a secret: the decoded bytes of a
// Standard Webhooks secret ("whsec_" and base64), the raw bytes of any
// other one (so that the Standard Webhooks libraries verify with
// NewWebhookRaw, or with "whsec_" and the secret in base64).
func SigningKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil && len(key) > 0 {
			return key
		}
	}
	return []byte(secret)
}

// Sign returns the Standard Webhooks signature of a message: "v1," and the
// base64 HMAC-SHA256, under key, of id, ts in Unix seconds and body joined
// by dots.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	// ErrMissingHeaders: a Standard Webhooks header is missing.
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrTimestamp: the timestamp is not a number or is too far from now.
	ErrTimestamp = errors.New("webhook: the webhook-timestamp is invalid or outside the tolerance")
	// ErrSignature: no signature is the key's for this message.
	ErrSignature = errors.New("webhook: no matching signature")
)

// Verify checks a received message the way a receiver would: the headers
// are there, the timestamp is within tolerance of now (DefaultTolerance
// when tolerance is not positive), and one of the signatures is key's for
// the id, the timestamp and body. Signatures are compared in constant
// time.
func Verify(key []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// In seconds, so that no timestamp overflows a time.Duration.
	tol := int64(tolerance / time.Second)
	if sec < now.Unix()-tol || sec > now.Unix()+tol {
		return ErrTimestamp
	}
	want := []byte(Sign(key, id, time.Unix(sec, 0), body))
	ok := 0
	for _, sig := range strings.Fields(sigs) {
		// Every one is compared, so the time taken tells nothing of
		// which matched.
		ok |= subtle.ConstantTimeCompare([]byte(sig), want)
	}
	if ok == 0 {
		return ErrSignature
	}
	return nil
}
