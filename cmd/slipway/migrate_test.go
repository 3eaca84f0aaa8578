package main

import (
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/gateway"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/projects"
)

// TestEventOutboxOnlyWhereEventsAre: a component that takes part in
// events gets the outbox with its database; the gateway (HTTPOnly), whose
// database only holds Idempotency-Key records, gets neither the tables nor
// (serve's start) a relay polling them.
func TestEventOutboxOnlyWhereEventsAre(t *testing.T) {
	for _, tc := range []struct {
		c    component.Component
		want bool
	}{{projects.Component, true}, {gateway.Component, false}} {
		var names []string
		for _, m := range migrationSets(tc.c) {
			names = append(names, m.Name)
		}
		if got := slices.Contains(names, events.Migrations.Name); got != tc.want {
			t.Errorf("%s: outbox migrations %v, want %v (sets %v)", tc.c.Name, got, tc.want, names)
		}
	}
}
