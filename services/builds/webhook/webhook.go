// Package webhook verifies and parses the push and pull request webhooks
// of GitHub, GitLab and Gitea (Forgejo sends Gitea's format) into one
// provider-neutral Event.
//
// It is pure: the caller reads the body (at most MaxBodyBytes), looks up
// the service's webhook secret, and calls Receive, or Identify, Verify and
// Parse one by one when it must read the payload before it knows the
// secret. Replays are the caller's to refuse: every accepted delivery has
// an ID, which the caller stores (per service) and refuses when seen
// again.
package webhook

import (
	"errors"
	"net/http"
	"strings"
)

// MaxBodyBytes is the largest body a webhook may have; the caller enforces
// it while reading (http.MaxBytesReader) and Parse checks it again. GitHub
// lists up to 2048 commits in a push, each with its message and file
// lists, which takes a few MiB; a larger body is refused with ErrTooLarge.
const MaxBodyBytes = 5 << 20

// Provider names the git server that sent a webhook.
type Provider string

// The providers whose webhooks this package reads.
const (
	GitHub Provider = "github"
	GitLab Provider = "gitlab"
	// Gitea also stands for Forgejo, which sends Gitea's headers and
	// payloads.
	Gitea Provider = "gitea"
)

// Errors returned by this package. They are meant to be shown to the
// sender as they are: they say what is wrong, never how it was checked,
// and Receive returns them wrapped (test with errors.Is).
var (
	// ErrSignature: the signature or token is missing or does not match
	// the secret (answer 401).
	ErrSignature = errors.New("the webhook signature is missing or does not match")
	// ErrUnsupportedEvent: a request with no known provider's event
	// header, or an event other than push, pull request or ping (answer
	// with success and do nothing, so the sender does not retry).
	ErrUnsupportedEvent = errors.New("unsupported webhook event")
	// ErrMalformed: a required header or field is missing or is not what
	// the provider sends (answer 400).
	ErrMalformed = errors.New("malformed webhook")
	// ErrTooLarge: the body is over MaxBodyBytes (answer 413).
	ErrTooLarge = errors.New("the webhook body is too large")
)

// Delivery is what the headers of a webhook request say: who sent it,
// which event, and its delivery id.
type Delivery struct {
	// Provider is the sender.
	Provider Provider
	// Event is the provider's event name, as in its event header ("push",
	// "Merge Request Hook", "pull_request").
	Event string
	// ID identifies the delivery: X-GitHub-Delivery, X-Gitea-Delivery
	// (X-Forgejo-Delivery), or GitLab's Idempotency-Key (the same on a
	// retry of one delivery), else X-Gitlab-Webhook-UUID, else
	// X-Gitlab-Event-UUID. The caller must refuse an ID it has already
	// accepted for the same service; GitLab's X-Gitlab-Event-UUID is
	// shared by every webhook one event sets off, so ids are only unique
	// per service.
	ID string
}

// maxDeliveryID bounds a delivery id: every provider sends a UUID, and the
// caller stores the id.
const maxDeliveryID = 128

// Identify reads the provider, the event and the delivery id from the
// headers. The Gitea headers are looked at before GitHub's, since Gitea
// sends GitHub's too. It fails with ErrUnsupportedEvent when no provider's
// event header is there, and with ErrMalformed when the delivery id is
// missing or is not a short printable token: a delivery without an id
// could be replayed undetected.
func Identify(h http.Header) (Delivery, error) {
	var d Delivery
	switch {
	case h.Get("X-Forgejo-Event") != "":
		d = Delivery{Gitea, h.Get("X-Forgejo-Event"), first(h, "X-Forgejo-Delivery", "X-Gitea-Delivery")}
	case h.Get("X-Gitea-Event") != "":
		d = Delivery{Gitea, h.Get("X-Gitea-Event"), h.Get("X-Gitea-Delivery")}
	case h.Get("X-Gitlab-Event") != "":
		d = Delivery{GitLab, h.Get("X-Gitlab-Event"),
			first(h, "Idempotency-Key", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event-UUID")}
	case h.Get("X-GitHub-Event") != "":
		d = Delivery{GitHub, h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")}
	default:
		return Delivery{}, errorf(ErrUnsupportedEvent, "no GitHub, GitLab or Gitea event header")
	}
	if d.ID == "" {
		return Delivery{}, errorf(ErrMalformed, "the delivery id header is missing")
	}
	if len(d.ID) > maxDeliveryID || !printable(d.ID) {
		return Delivery{}, errorf(ErrMalformed, "the delivery id is not a valid id")
	}
	return d, nil
}

// Receive identifies, verifies and parses a webhook: the usual entry
// point, for a caller that knows the secret from the request's URL.
func Receive(h http.Header, body []byte, secret string) (*Event, error) {
	d, err := Identify(h)
	if err != nil {
		return nil, err
	}
	if len(body) > MaxBodyBytes {
		return nil, ErrTooLarge // before hashing it
	}
	if err := d.Verify(h, body, secret); err != nil {
		return nil, err
	}
	return d.Parse(h, body)
}

// first returns the first non-empty value among the named headers.
func first(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// printable reports whether s is made of visible ASCII characters only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// errorf wraps a sentinel error with a sentence for the sender.
func errorf(sentinel error, detail string) error {
	return &detailError{sentinel, detail}
}

// detailError is a sentinel error with a detail; Is reports the sentinel.
type detailError struct {
	sentinel error
	detail   string
}

// Error returns the sentinel's text and the detail.
func (e *detailError) Error() string { return e.sentinel.Error() + ": " + e.detail }

// Unwrap returns the sentinel, for errors.Is.
func (e *detailError) Unwrap() error { return e.sentinel }

// isForm reports whether the body is form-encoded, the other content type
// GitHub and Gitea offer (the JSON is then the "payload" field).
func isForm(h http.Header) bool {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(h.Get("Content-Type"), ";")[0]))
	return ct == "application/x-www-form-urlencoded"
}
