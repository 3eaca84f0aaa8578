package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// ErrStale is what a versioned write returns (rolling its transaction
// back) when the row changed since it was read; Optimistic retries on it.
var ErrStale = errors.New("sqldb: the row changed since it was read")

// ErrContended is Optimistic's answer when every attempt lost its race. It
// is the store contract's apierr.ErrConflict (errors.Is holds), so stores
// can return it as it is and apierr.FromStore maps it.
var ErrContended = fmt.Errorf("sqldb: too many concurrent writers: %w", apierr.ErrConflict)

// optimisticAttempts bounds the retries: enough for heavy contention on one
// row (with the jittered backoff), small enough to fail fast.
const optimisticAttempts = 32

// Optimistic runs try, a read-modify-write that returns ErrStale when its
// version check fails, until it does not lose. Losers back off by a random
// amount that grows with each attempt, so they don't collide again in
// lockstep. After 32 lost attempts it returns ErrContended.
func Optimistic(ctx context.Context, try func() error) error {
	for attempt := range optimisticAttempts {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt)*int64(time.Millisecond) + 1)))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := try(); !errors.Is(err, ErrStale) {
			return err
		}
	}
	return ErrContended
}

// Versioned checks the result of a versioned UPDATE (... WHERE version =
// $read): no row matched means another writer came first, ErrStale.
func Versioned(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrStale
	}
	return nil
}
