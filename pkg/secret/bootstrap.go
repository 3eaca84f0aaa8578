package secret

import (
	"errors"
	"fmt"
)

// MinBootstrapLen is the shortest SLIPWAY_BOOTSTRAP_TOKEN accepted. At 32
// printable characters even a carelessly chosen value has enough entropy for
// the fast [Hash] to be safe, which is why the bootstrap token, unlike a
// password, is stored the same way as every other token.
const MinBootstrapLen = 32

// Errors returned by ValidBootstrap. Both wrap ErrInvalidBootstrap and
// neither includes the value, since the message ends up in startup logs.
var (
	// ErrInvalidBootstrap is the parent of every ValidBootstrap error.
	ErrInvalidBootstrap = errors.New("secret: invalid bootstrap token")
	// ErrBootstrapTooShort means the value has fewer than MinBootstrapLen
	// bytes.
	ErrBootstrapTooShort = fmt.Errorf("%w: shorter than %d characters", ErrInvalidBootstrap, MinBootstrapLen)
	// ErrBootstrapCharset means the value contains whitespace, a control
	// character or a non-ASCII byte.
	ErrBootstrapCharset = fmt.Errorf("%w: only printable ASCII without whitespace is allowed", ErrInvalidBootstrap)
)

// ValidBootstrap checks an operator-supplied bootstrap token. It is an
// arbitrary string, not a slw_ token, so Parse does not apply; instead it
// must be at least MinBootstrapLen bytes of printable ASCII with no
// whitespace. Whitespace is refused because a trailing newline from a secret
// file or a stray space from copy-paste would otherwise become part of the
// token and make it silently unusable; non-ASCII is refused because the
// same text can be encoded differently by different clients.
func ValidBootstrap(s string) error {
	if len(s) < MinBootstrapLen {
		return ErrBootstrapTooShort
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return ErrBootstrapCharset
		}
	}
	return nil
}
