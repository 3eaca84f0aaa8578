package oauth

import (
	"net/http"

	"github.com/ory/fosite"
)

// endpointMethods are the methods each endpoint serves, as its Allow
// header lists them (a GET route also serves HEAD).
var endpointMethods = map[string]string{
	PathMetadata:   "GET, HEAD",
	PathAuthorize:  "GET, HEAD, POST",
	PathToken:      "POST",
	PathIntrospect: "POST",
	PathRevoke:     "POST",
}

// handleRoutingErrors makes mux answer a path it does not serve, and an
// endpoint asked with a method it does not serve, in the same JSON error
// format as every other error of the authorization server (RFC 6749
// section 5.2, written by fosite), instead of net/http's plain text: 404
// "not_found", and 405 "invalid_request" with Allow.
func (p *Provider) handleRoutingErrors(mux *http.ServeMux) {
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.oauth.WriteAccessError(r.Context(), w, nil, fosite.ErrNotFound.WithHint("There is no OAuth2 endpoint at this path."))
	})
	for path, allow := range endpointMethods {
		// Without a method the pattern is less specific than the
		// endpoint's own ones, so it only gets the other methods.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			p.oauth.WriteAccessError(r.Context(), w, nil, &fosite.RFC6749Error{
				ErrorField:       "invalid_request",
				DescriptionField: "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
				HintField:        "The HTTP method " + r.Method + " is not allowed here; allowed: " + allow + ".",
				CodeField:        http.StatusMethodNotAllowed,
			})
		})
	}
}
