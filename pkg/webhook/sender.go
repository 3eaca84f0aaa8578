package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/pkg/netguard"
)

// Request is one attempt at delivering a message.
type Request struct {
	// URL is the receiver's http or https URL.
	URL string
	// ID is the webhook-id: stable per (event, subscription), the same on
	// every attempt, so the receiver can drop duplicates.
	ID string
	// Time is the webhook-timestamp: this attempt's time.
	Time time.Time
	// Body is the JSON sent.
	Body []byte
	// Header holds extra headers (e.g. X-Northflank-Notification-*);
	// they do not replace Content-Type, User-Agent or the Standard
	// Webhooks headers.
	Header http.Header
	// SigningKey signs the message (SigningKey of the secret); nil: no
	// webhook-signature header.
	SigningKey []byte
}

// Result is what an attempt came to.
type Result struct {
	// StatusCode is the receiver's answer; 0 when there was none.
	StatusCode int
	// Latency is the time from sending to the response's headers (or to
	// the failure).
	Latency time.Duration
	// Err is nil on a 2xx answer. Its message is safe to store and show
	// to the team that owns the webhook: it names no address Slipway
	// resolved and nothing of the server's network.
	Err error
	// Retry is whether another attempt is worth it: after a network
	// error, a timeout or any non-2xx answer; not for a refused address
	// or an invalid URL, which another attempt would not change.
	Retry bool
}

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Rule is the address rule receivers must pass (nil: public
	// addresses only).
	Rule *netguard.Rule
	// Timeout bounds a whole attempt: connecting, sending, the answer and
	// reading its body; default 10s.
	Timeout time.Duration
	// MaxResponseBytes is how much of a response body is read (and
	// discarded) before the connection is dropped; default 64 KiB.
	MaxResponseBytes int64
	// UserAgent is sent as User-Agent; default "Slipway-Webhooks/1".
	UserAgent string
}

// Sender delivers webhook attempts. It is safe for concurrent use.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	max     int64
	agent   string
}

// NewSender returns a Sender over a client that connects only where
// opts.Rule allows and never follows redirects (a receiver could
// otherwise point Slipway at any URL, and a redirect is not a delivery).
func NewSender(opts SenderOptions) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 64 << 10
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "Slipway-Webhooks/1"
	}
	c := opts.Rule.HTTPClient(netguard.ClientOptions{DialTimeout: opts.Timeout, TLSHandshakeTimeout: opts.Timeout})
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{client: c, timeout: opts.Timeout, max: opts.MaxResponseBytes, agent: opts.UserAgent}
}

// Send makes one attempt: a POST of req.Body as application/json with the
// Standard Webhooks headers, within the Sender's timeout. It never
// follows a redirect: a 3xx answer is a failure.
func (s *Sender) Send(ctx context.Context, req Request) Result {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return Result{Err: errors.New("the URL is not a valid http or https URL")}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return Result{Err: errors.New("the URL is not a valid http or https URL")}
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", s.agent)
	hr.Header.Set(HeaderID, req.ID)
	hr.Header.Set(HeaderTimestamp, strconv.FormatInt(req.Time.Unix(), 10))
	hr.Header.Del(HeaderSignature)
	if req.SigningKey != nil {
		hr.Header.Set(HeaderSignature, Sign(req.SigningKey, req.ID, req.Time, req.Body))
	}

	start := time.Now()
	resp, err := s.client.Do(hr)
	latency := time.Since(start)
	if err != nil {
		msg, retry := s.failure(ctx, err)
		return Result{Latency: latency, Err: errors.New(msg), Retry: retry}
	}
	// Read (a bounded part of) the body so that a receiver that answers
	// before reading is not cut off mid-request, then drop the rest.
	_, _ = io.CopyN(io.Discard, resp.Body, s.max)
	_ = resp.Body.Close()
	r := Result{StatusCode: resp.StatusCode, Latency: latency}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		r.Err = fmt.Errorf("the receiver answered HTTP %d, a redirect, which is not followed", resp.StatusCode)
		r.Retry = true
	default:
		r.Err = fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
		r.Retry = true
	}
	return r
}

// failure words a failed request for the webhook's owner, without the
// addresses or internals Go's errors carry, and tells whether to retry.
func (s *Sender) failure(ctx context.Context, err error) (string, bool) {
	var dnsErr *net.DNSError
	var certErr *x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, netguard.ErrRefused):
		return "the receiver's address is a loopback, private or denied one, which this server does not allow", false
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("the receiver did not answer within %s", s.timeout), true
	case ctx.Err() != nil:
		return "the delivery was interrupted", true
	case errors.As(err, &dnsErr):
		return "the receiver's host name could not be resolved", true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the receiver refused the connection", true
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return "the receiver's TLS certificate is not valid for its host", true
	}
	return "the receiver could not be reached", true
}

// Backoff is the wait before retry number attempt (1, 2, 3...):
// base·2^(attempt-1), at most max, less a random jitter of up to half (a
// uniform draw in [d/2, d]), so deliveries that failed together do not
// all come back together.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 { // d <= 0: overflowed
		d = max
	}
	half := d / 2
	return d - half + rand.N(half+1)
}
