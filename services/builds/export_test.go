package builds

import "context"

// PollRound runs one round of s's poller, as its loop does at a tick: the
// tests drive rounds one at a time instead of waiting for the ticker.
func PollRound(ctx context.Context, s *Service) { s.pollRound(ctx) }
