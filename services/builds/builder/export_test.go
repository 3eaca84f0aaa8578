package builder

import "context"

// RunSSH runs the clone's ssh command (sshScript) for src in the clone's
// sandbox, as git runs it, with args (shell words) and returns what it
// printed, stdout and stderr, and a last line "exit N".
func (b *Builder) RunSSH(ctx context.Context, src Source, args string) (string, error) {
	return b.remote(ctx, src, "ssh", "running ssh", `"$GIT_SSH_COMMAND" `+args+` 2>&1; echo "exit $?"`, nil)
}
