package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ory/fosite"
)

// maxJSONBody bounds a JSON request body to the endpoints: their
// parameters are a few short strings (the gateway's own limit, 1 MiB, is
// far above what any legitimate request needs).
const maxJSONBody = 64 << 10

// jsonForm lets the token, introspection and revocation endpoints take
// their parameters as a JSON object (Content-Type: application/json), as
// well as the form RFC 6749 specifies: some APIs' clients post
// {"grant_type": "client_credentials", ...}. The object's members become
// the form fosite reads, so both bodies go through one code path and one
// set of checks. A body that is not an object of string members — malformed
// JSON, a number, null, an array, a nested object, a member given twice
// (RFC 6749 §3.2: no parameter more than once) or trailing data — is the
// RFC's invalid_request, written by fail in the endpoint's own format.
func jsonForm(next http.HandlerFunc, fail func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !isJSON(r.Header.Get("Content-Type")) {
			next(w, r)
			return
		}
		form, err := decodeJSONForm(http.MaxBytesReader(w, r.Body, maxJSONBody))
		if err != nil {
			fail(w, r, fosite.ErrInvalidRequest.WithHint(err.Error()))
			return
		}
		body := form.Encode()
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Form, r.PostForm = nil, nil // parsed again from the new body
		next(w, r)
	}
}

// isJSON reports whether a Content-Type header names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// decodeJSONForm reads a JSON object of string members into form
// parameters. Its errors are the hint a client sees: they name the member
// at fault, never the value.
func decodeJSONForm(r io.Reader) (url.Values, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errors.New("The request body is larger than " + strconv.Itoa(maxJSONBody) + " bytes.")
		}
		return nil, errors.New("The request body could not be read.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("The request body must be a JSON object of string parameters.")
	}
	form := url.Values{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("The request body is not valid JSON.")
		}
		name := tok.(string) // inside an object, a token before a value is its member name
		tok, err = dec.Token()
		if err != nil {
			return nil, errors.New("The request body is not valid JSON.")
		}
		value, ok := tok.(string)
		if !ok {
			return nil, errors.New("The parameter " + strconv.Quote(name) + " must be a string.")
		}
		if form.Has(name) {
			return nil, errors.New("The parameter " + strconv.Quote(name) + " is given more than once.")
		}
		form.Set(name, value)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, errors.New("The request body is not valid JSON.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("The request body has data after its JSON object.")
	}
	return form, nil
}
