package apierr

import (
	"encoding/json"
	"net/http"
)

// Envelope is Northflank's error envelope, the body of every error answer
// Slipway writes over HTTP: the gateway's and the ingress's alike.
type Envelope struct {
	Error EnvelopeError `json:"error"`
}

// EnvelopeError is the envelope's "error" object.
type EnvelopeError struct {
	// Status repeats the HTTP status.
	Status int `json:"status"`
	// Message is a sentence safe to show.
	Message string `json:"message"`
	// ID is the reason, the machine-readable part clients match on.
	ID Reason `json:"id"`
	// Details are optional specifics, such as field violations.
	Details any `json:"details,omitempty"`
}

// WriteHTTP writes the envelope with the given status. id is typed so that
// every writer uses the declared vocabulary. Error answers are never
// cached: the next attempt may succeed.
func WriteHTTP(w http.ResponseWriter, status int, id Reason, message string, details any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote permissions like "Project > Jobs"
	_ = enc.Encode(Envelope{Error: EnvelopeError{Status: status, Message: message, ID: id, Details: details}})
}
