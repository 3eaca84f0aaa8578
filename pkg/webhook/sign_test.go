package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The specification's published test vector (the reference libraries'
// TestWebhookSign).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTime   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecificationsVector(t *testing.T) {
	got := Sign(SigningKey(vectorSecret), vectorID, time.Unix(vectorTime, 0), []byte(vectorBody))
	if got != vectorSig {
		t.Fatalf("Sign = %s, want %s", got, vectorSig)
	}
}

func TestSigningKey(t *testing.T) {
	if got, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); !bytes.Equal(SigningKey(vectorSecret), got) {
		t.Fatal("a whsec_ secret is not its decoded bytes")
	}
	for _, s := range []string{"plain-secret", "whsec_not base64!", "whsec_", ""} {
		if !bytes.Equal(SigningKey(s), []byte(s)) {
			t.Errorf("SigningKey(%q) is not the secret's bytes", s)
		}
	}
}

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

// The official library verifies what Sign signs, for a whsec_ secret and
// for a raw one, and Verify accepts what the library signs.
func TestSignatureAgreesWithTheStandardWebhooksLibrary(t *testing.T) {
	now := time.Now()
	body := []byte(`{"event":"build:success","data":{"id":"b1"}}`)
	for _, secret := range []string{vectorSecret, "a team's own secret"} {
		key := SigningKey(secret)
		lib, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			t.Fatal(err)
		}
		h := headers("evt_1", now, Sign(key, "evt_1", now, body))
		if err := lib.Verify(body, h); err != nil {
			t.Fatalf("secret %q: the library rejects Sign's signature: %v", secret, err)
		}
		libSig, err := lib.Sign("evt_2", now, body)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(key, headers("evt_2", now, libSig), body, 0, now); err != nil {
			t.Fatalf("secret %q: Verify rejects the library's signature: %v", secret, err)
		}
	}
	// A receiver configured with the whsec_ secret itself.
	lib, err := standardwebhooks.NewWebhook(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.Verify(body, headers("evt_3", now, Sign(SigningKey(vectorSecret), "evt_3", now, body))); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	key := SigningKey(vectorSecret)
	now := time.Unix(vectorTime, 0)
	body := []byte(vectorBody)
	good := headers(vectorID, now, vectorSig)
	if err := Verify(key, good, body, time.Minute, now); err != nil {
		t.Fatalf("the vector: %v", err)
	}
	multi := headers(vectorID, now, "v1,Zm9v "+vectorSig+" v2,bar")
	if err := Verify(key, multi, body, time.Minute, now); err != nil {
		t.Fatalf("several signatures, one good: %v", err)
	}
	for name, tc := range map[string]struct {
		key  []byte
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		"other key":           {[]byte("other"), good, vectorBody, now, ErrSignature},
		"other body":          {key, good, vectorBody + " ", now, ErrSignature},
		"other id":            {key, headers("msg_other", now, vectorSig), vectorBody, now, ErrSignature},
		"other timestamp":     {key, headers(vectorID, now.Add(time.Second), vectorSig), vectorBody, now, ErrSignature},
		"no signature":        {key, headers(vectorID, now, ""), vectorBody, now, ErrMissingHeaders},
		"no id":               {key, headers("", now, vectorSig), vectorBody, now, ErrMissingHeaders},
		"too old":             {key, good, vectorBody, now.Add(2 * time.Minute), ErrTimestamp},
		"too new":             {key, good, vectorBody, now.Add(-2 * time.Minute), ErrTimestamp},
		"signature prefix":    {key, headers(vectorID, now, vectorSig[:len(vectorSig)-4]), vectorBody, now, ErrSignature},
		"version not v1":      {key, headers(vectorID, now, "v2"+vectorSig[2:]), vectorBody, now, ErrSignature},
		"bad timestamp":       {key, func() http.Header { h := good.Clone(); h.Set(HeaderTimestamp, "12a"); return h }(), vectorBody, now, ErrTimestamp},
		"far timestamp":       {key, func() http.Header { h := good.Clone(); h.Set(HeaderTimestamp, "-9223372036854775808"); return h }(), vectorBody, now, ErrTimestamp},
		"signature, no comma": {key, headers(vectorID, now, "v1"), vectorBody, now, ErrSignature},
	} {
		if err := Verify(tc.key, tc.h, []byte(tc.body), time.Minute, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzVerify: Verify never panics, and a message verifies only with a
// signature made with the key for exactly that id, timestamp and body.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("key"), "msg_1", int64(vectorTime), []byte(vectorBody), vectorSig, "123")
	f.Add(SigningKey(vectorSecret), vectorID, int64(vectorTime), []byte(vectorBody), vectorSig, vectorID)
	f.Add([]byte{}, "", int64(-1), []byte{}, "v1, v1,", "x")
	f.Fuzz(func(t *testing.T, key []byte, id string, ts int64, body []byte, sig, otherID string) {
		now := time.Unix(vectorTime, 0)
		tsHeader := strconv.FormatInt(ts, 10)
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, tsHeader)
		h.Set(HeaderSignature, sig)
		err := Verify(key, h, body, time.Hour, now)
		if err == nil {
			// Only the key's own signature for this message opens it.
			want := Sign(key, h.Get(HeaderID), time.Unix(ts, 0), body)
			found := false
			for _, s := range bytes.Fields([]byte(h.Get(HeaderSignature))) {
				found = found || string(s) == want
			}
			if !found {
				t.Fatalf("Verify accepted %q, which is not %q", sig, want)
			}
		}
		// What Sign makes verifies, and not for another key or id.
		signed := headers(id, now, Sign(key, id, now, body))
		if h.Get(HeaderID) != "" {
			if err := Verify(key, signed, body, time.Hour, now); err != nil {
				t.Fatalf("Verify rejects Sign's own signature: %v", err)
			}
			if err := Verify(append([]byte{1}, key...), signed, body, time.Hour, now); err == nil {
				t.Fatal("Verify accepts the signature under another key")
			}
			if otherID != id && otherID != "" {
				o := signed.Clone()
				o.Set(HeaderID, otherID)
				if err := Verify(key, o, body, time.Hour, now); err == nil {
					t.Fatal("Verify accepts the signature for another id")
				}
			}
		}
	})
}
