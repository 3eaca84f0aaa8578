// Package apierr is Slipway's one error vocabulary. Services return these
// errors from their handlers and stores; the gRPC server turns them into
// statuses (with google.rpc.ErrorInfo and BadRequest details) in one
// interceptor, and the gateway turns statuses into Northflank error
// envelopes in one handler. Nothing else decides what a failure looks like
// on the wire.
//
// The vocabulary has three parts: the Reasons (reason.go), declared once
// and used by services and the gateway alike; the constructors below,
// which pair a reason with its gRPC code; and the store contract
// (store.go), whose sentinels every store returns and FromStore maps.
package apierr

import (
	"errors"
	"fmt"
	"sort"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the ErrorInfo domain of every Slipway error.
const Domain = "slipway.dev"

// Error is a failure meant for the caller: its message is safe to show.
type Error struct {
	// Code is the gRPC code, which fixes the HTTP status.
	Code codes.Code
	// Reason is a stable, machine-readable identifier, one of the declared
	// Reasons; it becomes the "id" of the Northflank error envelope.
	Reason Reason
	// Message is a human-readable sentence without internals.
	Message string
	// Fields maps a request field (JSON name, dotted path) to what is wrong
	// with it; set for invalid input.
	Fields map[string][]string
}

// Error implements error.
func (e *Error) Error() string { return e.Message }

// GRPCStatus lets status.FromError and the gRPC runtime see e as a status
// with its details attached.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(e.Reason), Domain: Domain}}
	if len(e.Fields) > 0 {
		br := &errdetails.BadRequest{}
		for _, f := range sortedKeys(e.Fields) {
			for _, d := range e.Fields[f] {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f, Description: d})
			}
		}
		details = append(details, br)
	}
	if withDetails, err := st.WithDetails(details...); err == nil {
		return withDetails
	}
	return st
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NotFound reports that a resource does not exist (or is not visible to
// the caller: the two are indistinguishable on purpose).
func NotFound(kind, id string) *Error {
	return &Error{Code: codes.NotFound, Reason: ReasonNotFound, Message: subject(kind, id) + " not found"}
}

// AlreadyExists reports a create whose derived id is taken.
func AlreadyExists(kind, id string) *Error {
	return &Error{Code: codes.AlreadyExists, Reason: ReasonAlreadyExists, Message: subject(kind, id) + " already exists"}
}

// subject names a resource in a message: its kind and quoted id, or the
// kind alone when the caller does not know the id (a generated one that
// collided).
func subject(kind, id string) string {
	if id == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, id)
}

// Conflict reports a request that the resource's current state forbids;
// reason says which rule refused it.
func Conflict(reason Reason, format string, args ...any) *Error {
	return &Error{Code: codes.FailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Aborted reports a write that lost a race and may be retried.
func Aborted(format string, args ...any) *Error {
	return &Error{Code: codes.Aborted, Reason: ReasonConcurrentModification, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports invalid input; fields maps each offending field to what
// is wrong with it.
func Invalid(message string, fields map[string][]string) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: ReasonValidationFailed, Message: message, Fields: fields}
}

// InvalidField reports one invalid field.
func InvalidField(field, description string) *Error {
	return Invalid("request validation failed", map[string][]string{field: {description}})
}

// Unavailable reports that a dependency is down; callers may retry.
func Unavailable(what string) *Error {
	return &Error{Code: codes.Unavailable, Reason: ReasonUnavailable, Message: what + " is unavailable, try again later"}
}

// Internal is what callers see for any unexpected failure: the cause is
// logged, never returned.
var Internal = &Error{Code: codes.Internal, Reason: ReasonInternal, Message: "internal error"}

// From returns the *Error in err's chain, or nil.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
