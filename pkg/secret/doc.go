// Package secret generates, checks and hashes the credentials the auth
// service hands out or accepts: API tokens (personal, team, OAuth access and
// refresh), API credential key ids and secrets, the operator's bootstrap
// token, and user passwords.
//
// The package keeps two kinds of secret apart on purpose. Tokens are minted
// here from crypto/rand and are long enough that brute force is hopeless, so
// they are stored as a plain SHA-256 digest (see [Hash]) that doubles as the
// database lookup key. Passwords are chosen by people and are guessable, so
// they go through argon2id (see [HashPassword]), which is deliberately slow
// and memory-hungry.
//
// Nothing in this package logs, and no error it returns contains the secret
// (or any part of it) that it was given: errors end up in logs and API
// responses, and a token echoed there is a leaked token.
package secret
