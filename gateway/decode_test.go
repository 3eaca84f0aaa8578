package gateway

import (
	"reflect"
	"testing"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
)

// TestDecodeNamesMapKeysVerbatim: a map value of the wrong type is named
// by its key as sent, in the same form as the services' validation names
// it, never camel-cased or dotted.
func TestDecodeNamesMapKeysVerbatim(t *testing.T) {
	err := decodeJSON([]byte(`{"name":"job","runtimeEnvironment":{"pwned_key":1,"a.b":true}}`), &jobsv1.JobSpec{})
	e := apierr.From(err)
	if e == nil || e.Reason != apierr.ReasonValidationFailed {
		t.Fatalf("decodeJSON = %v, want a validation error", err)
	}
	want := map[string][]string{
		`runtimeEnvironment["pwned_key"]`: {"must be a string"},
		`runtimeEnvironment["a.b"]`:       {"must be a string"},
	}
	if !reflect.DeepEqual(e.Fields, want) {
		t.Fatalf("fields %q, want %q", e.Fields, want)
	}
}
