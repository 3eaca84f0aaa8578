package apierr

import "errors"

// Store errors are the contract between every service's store and its
// handlers: a store returns them (wrapped with context if it likes), and
// FromStore turns them into API errors. Declaring them once means a store
// suite, a handler and the mapping all speak of the same failures, and a
// new service inherits the mapping instead of writing its own.
var (
	// ErrNotFound: the row asked for does not exist (or its parent does
	// not, for a write that needs one).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an insert hit a taken id (a unique constraint).
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a read-modify-write kept losing its race with other
	// writers and gave up; retrying later may succeed.
	ErrConflict = errors.New("concurrent modification")
)

// FromStore maps a store error onto the API vocabulary, naming the
// resource by kind ("project", "job run") and id (empty when the caller
// does not know it): ErrNotFound is
// NotFound, ErrAlreadyExists is AlreadyExists, ErrConflict is Aborted.
// An *Error (a refusal from a mutate callback) passes unchanged, and so
// does any other error, which the RPC server logs and shows as Internal.
// Every service maps its store's errors here, so the same failure reads
// the same on every endpoint.
func FromStore(err error, kind, id string) error {
	switch {
	case err == nil:
		return nil
	case From(err) != nil:
		return err
	case errors.Is(err, ErrNotFound):
		return NotFound(kind, id)
	case errors.Is(err, ErrAlreadyExists):
		return AlreadyExists(kind, id)
	case errors.Is(err, ErrConflict):
		return Aborted("%s %q is being modified concurrently; retry", kind, id)
	}
	return err
}
