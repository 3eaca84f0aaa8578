package gateway

import (
	"context"
	"net/http"
	"regexp"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/requestid"
)

// errorDetail is the error envelope's "error" object (apierr owns the
// envelope, which the ingress writes too).
type errorDetail = apierr.EnvelopeError

// httpStatus maps gRPC codes to HTTP statuses: the one table for the API.
// ResourceExhausted is not in it: 429 is the gateway's own answer for a
// spent quota (quotaExceeded), while gRPC says ResourceExhausted for a
// message over its size limit, which is no fault of the caller and no
// reason to retry later: that is a 500 like any unexpected failure.
var httpStatus = map[codes.Code]int{
	codes.OK:                 http.StatusOK,
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.Aborted:            http.StatusConflict,
	codes.FailedPrecondition: http.StatusConflict,
	codes.Canceled:           499, // client closed request
	codes.Unimplemented:      http.StatusNotImplemented,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
}

// genericMessage is what callers see for a status whose message is not
// known to be safe (it did not come from a Slipway service).
var genericMessage = map[codes.Code]string{
	codes.Unauthenticated:  "authentication required",
	codes.PermissionDenied: "permission denied",
	codes.NotFound:         "not found",
	codes.Canceled:         "request canceled",
	codes.Unimplemented:    "not implemented",
	codes.Unavailable:      "service unavailable, try again later",
	codes.DeadlineExceeded: "request timed out",
}

// writeError writes the envelope with the given status. id is typed so
// that the gateway's own answers use the declared vocabulary.
func writeError(w http.ResponseWriter, status int, id apierr.Reason, message string, details any) {
	apierr.WriteHTTP(w, status, id, message, details)
}

// gatewayInputErrors recognise grpc-gateway's messages about the path and
// the query string (its own decoding, before any service is called), to
// answer them as every other invalid input is answered: the validation
// reason, naming the parameter without the parser's internals.
var gatewayInputErrors = []struct {
	match   *regexp.Regexp
	problem string
}{
	{regexp.MustCompile(`^(?:parsing (?:field|list|map key|map value)|type mismatch, parameter:) "?([A-Za-z0-9_.]+)"?`), "has the wrong type"},
	{regexp.MustCompile(`^(?:too many values for field|duplicate field) "([^"]+)"`), "is given more than once"},
	{regexp.MustCompile(`^missing parameter ([A-Za-z0-9_.]+)`), "is required"},
}

// gatewayInputError turns a reasonless InvalidArgument, which only
// grpc-gateway's decoding of the path and query produces (every Slipway
// service attaches a reason), into field details. A query string that is
// not one (an escape like %ZZ) is named "query".
func gatewayInputError(message string) map[string][]string {
	for _, e := range gatewayInputErrors {
		if m := e.match.FindStringSubmatch(message); m != nil {
			return map[string][]string{m[1]: {e.problem}}
		}
	}
	return map[string][]string{"query": {"is not a valid URL query string"}}
}

// handleError is grpc-gateway's error handler: every failed call, from the
// gateway's own decoding or from a service, is shaped here.
func (g *Gateway) handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if b, ok := r.Body.(*requestBody); ok && b.decodeErr != nil {
		err = b.decodeErr
	}
	e := g.apiError(r.Context(), err)
	writeError(w, e.Status, apierr.Reason(e.ID), e.Message, e.Details)
}

// apiError shapes err as the API shows it: HTTP status, reason, message
// and field details. Text that did not come from a Slipway service is
// replaced by a generic message, and internal errors are logged (with
// ctx's request id) and shown as the generic internal error. The HTTP
// error envelope and the WebSocket log tail's error messages both say
// what it returns.
func (g *Gateway) apiError(ctx context.Context, err error) errorDetail {
	if e := apierr.From(err); e != nil {
		err = e.GRPCStatus().Err()
	}
	st := status.Convert(err)
	code := st.Code()
	httpCode, known := httpStatus[code]
	if !known {
		httpCode = http.StatusInternalServerError
	}
	reason, message, details := describe(st)
	if reason == "" { // not from a Slipway service: don't trust its text
		reason = apierr.CodeReason(code)
		message = genericMessage[code]
		if code == codes.InvalidArgument {
			message = "request validation failed"
			details = gatewayInputError(st.Message())
			reason = apierr.ReasonValidationFailed
		}
	}
	if httpCode == http.StatusInternalServerError {
		g.log.ErrorContext(ctx, "request failed", "code", code.String(), "error", st.Message(), "request_id", requestid.FromContext(ctx))
		reason, message, details = apierr.Internal.Reason, apierr.Internal.Message, nil
	}
	if message == "" {
		message = http.StatusText(httpCode)
	}
	return errorDetail{Status: httpCode, Message: message, ID: reason, Details: details}
}

// describe extracts the reason, message and field details a Slipway
// service attached to st; reason is empty when st carries none.
func describe(st *status.Status) (reason apierr.Reason, message string, details any) {
	var fields map[string][]string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == apierr.Domain {
				reason = apierr.Reason(d.GetReason())
			}
		case *errdetails.BadRequest:
			fields = map[string][]string{}
			for _, v := range d.GetFieldViolations() {
				fields[v.GetField()] = append(fields[v.GetField()], v.GetDescription())
			}
		}
	}
	if reason == "" {
		return "", "", nil
	}
	if fields != nil {
		details = fields
	}
	return reason, st.Message(), details
}

// handleRoutingError shapes the mux's own 404/405/501 answers.
func (g *Gateway) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusNotFound:
		writeError(w, code, apierr.ReasonRouteNotFound, "no route for "+r.Method+" "+r.URL.Path, nil)
	case http.StatusMethodNotAllowed:
		if allow := g.routes.allowed(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeError(w, code, apierr.ReasonMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path, nil)
	default:
		writeError(w, code, apierr.HTTPStatusReason(code), http.StatusText(code), nil)
	}
}
