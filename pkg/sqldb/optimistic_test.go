package sqldb

import (
	"context"
	"errors"
	"testing"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

func TestOptimistic(t *testing.T) {
	ctx := context.Background()
	tries := 0
	if err := Optimistic(ctx, func() error {
		if tries++; tries < 3 {
			return ErrStale
		}
		return nil
	}); err != nil || tries != 3 {
		t.Fatalf("won on try 3: err %v after %d tries", err, tries)
	}
	tries = 0
	if err := Optimistic(ctx, func() error { tries++; return ErrStale }); !errors.Is(err, ErrContended) || !errors.Is(err, apierr.ErrConflict) || tries != optimisticAttempts {
		t.Fatalf("always losing: err %v after %d tries", err, tries)
	}
	boom := errors.New("boom")
	tries = 0
	if err := Optimistic(ctx, func() error { tries++; return boom }); !errors.Is(err, boom) || tries != 1 {
		t.Fatalf("other errors end it at once: err %v after %d tries", err, tries)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := Optimistic(canceled, func() error { return ErrStale }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context stops the retries: %v", err)
	}
}
