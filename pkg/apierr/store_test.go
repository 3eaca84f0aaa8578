package apierr

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestFromStore(t *testing.T) {
	other := errors.New("disk on fire")
	refusal := Conflict(ReasonRunConcluded, "run %q has already concluded", "r1")
	for name, c := range map[string]struct {
		in      error
		code    codes.Code
		reason  Reason
		message string
		same    error // when set, FromStore must return exactly this
	}{
		"not found":        {in: ErrNotFound, code: codes.NotFound, reason: ReasonNotFound, message: `job "nightly" not found`},
		"wrapped":          {in: fmt.Errorf("get job: %w", ErrNotFound), code: codes.NotFound, reason: ReasonNotFound, message: `job "nightly" not found`},
		"already exists":   {in: ErrAlreadyExists, code: codes.AlreadyExists, reason: ReasonAlreadyExists, message: `job "nightly" already exists`},
		"conflict":         {in: ErrConflict, code: codes.Aborted, reason: ReasonConcurrentModification, message: `job "nightly" is being modified concurrently; retry`},
		"API error kept":   {in: refusal, same: refusal},
		"API error nested": {in: fmt.Errorf("update: %w", refusal), code: codes.FailedPrecondition, reason: ReasonRunConcluded, message: `run "r1" has already concluded`},
		"other error kept": {in: other, same: other},
	} {
		t.Run(name, func(t *testing.T) {
			got := FromStore(c.in, "job", "nightly")
			if c.same != nil {
				if got != c.same {
					t.Fatalf("FromStore(%v) = %v, want it unchanged", c.in, got)
				}
				return
			}
			e := From(got)
			if e == nil {
				t.Fatalf("FromStore(%v) = %v, not an API error", c.in, got)
			}
			if e.Code != c.code || e.Reason != c.reason || e.Message != c.message {
				t.Fatalf("FromStore(%v) = {%v %s %q}, want {%v %s %q}", c.in, e.Code, e.Reason, e.Message, c.code, c.reason, c.message)
			}
		})
	}
	if e := From(FromStore(ErrAlreadyExists, "OAuth client", "")); e == nil || e.Message != "OAuth client already exists" {
		t.Fatalf("FromStore without an id = %v, want the kind alone", e)
	}
	if FromStore(nil, "job", "nightly") != nil {
		t.Fatal("FromStore(nil) is not nil")
	}
}
