package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Kind says what a token is for. It is spelled out in the token itself
// (slw_<kind>_...) so that a leaked token found by a secret scanner, or
// pasted into a support ticket, can be triaged at a glance and routed to the
// right revocation path without a database lookup.
type Kind string

// The token kinds Slipway issues. The short names follow GitHub's ghp_/gho_
// convention; they are part of the wire format and of [Pattern], so they
// must never be renamed, only added to.
const (
	// KindPersonal is a personal access token, acting as the user who made it.
	KindPersonal Kind = "pat"
	// KindTeam is a team token, bound to a team role rather than a person.
	KindTeam Kind = "tt"
	// KindOAuthAccess is a short-lived OAuth access token.
	KindOAuthAccess Kind = "oat"
	// KindOAuthRefresh is an OAuth refresh token.
	KindOAuthRefresh Kind = "ort"
	// KindAPISecret is the secret half of an API credential used with HTTP
	// Basic auth (the public half is a key id from [NewKeyID]).
	KindAPISecret Kind = "sk"
)

// kinds is the closed set Parse accepts; anything else is rejected before
// any further work.
var kinds = map[Kind]bool{
	KindPersonal:     true,
	KindTeam:         true,
	KindOAuthAccess:  true,
	KindOAuthRefresh: true,
	KindAPISecret:    true,
}

const (
	// prefix marks every Slipway token; scanners key on it.
	prefix = "slw_"

	// bodyBytes is the amount of randomness in a token: 240 bits, well past
	// the 178 bits of a GitHub token and far beyond online or offline brute
	// force, which is what lets [Hash] be a fast hash.
	bodyBytes = 30

	// bodyLen is how many base62 digits hold bodyBytes bytes: the least n
	// with 62^n >= 2^240 (62^40 ~ 2^238.2 is too small, 62^41 ~ 2^244.1
	// fits). Fixed length, left-padded with '0', so the token length never
	// depends on the random value and the scanner pattern can be exact.
	bodyLen = 41

	// checksumLen is how many base62 digits hold a CRC32: 62^6 > 2^32.
	checksumLen = 6

	// tailLen is the length of everything after slw_<kind>_.
	tailLen = bodyLen + checksumLen

	// maxTokenLen bounds the input Parse will even look at: the longest
	// kind is three letters.
	maxTokenLen = len(prefix) + 3 + 1 + tailLen
)

// Pattern is a regular expression (RE2 / Go regexp syntax, also valid PCRE)
// that matches Slipway tokens in free text. It is meant for secret scanners
// (GitHub secret scanning custom patterns, gitleaks, trufflehog) and for log
// redaction. A match is only a candidate: confirm it with [Parse], whose
// checksum check weeds out most false positives offline.
const Pattern = `\bslw_(pat|tt|oat|ort|sk)_[0-9A-Za-z]{47}\b`

// Errors returned by Parse. They all wrap ErrInvalidToken, so callers that
// only need "reject with 401" can test for that; the finer reasons exist for
// metrics (a checksum failure is usually a typo or truncated paste, not an
// attack). None of them include any part of the token.
var (
	// ErrInvalidToken is the parent of every Parse error.
	ErrInvalidToken = errors.New("secret: invalid token")
	// ErrMalformedToken means the token does not have the slw_<kind>_<body>
	// shape: wrong prefix, wrong length or a character outside base62.
	ErrMalformedToken = fmt.Errorf("%w: malformed", ErrInvalidToken)
	// ErrUnknownKind means the shape is right but the kind is not one
	// Slipway issues. New also returns it for an unknown kind.
	ErrUnknownKind = fmt.Errorf("%w: unknown kind", ErrInvalidToken)
	// ErrChecksum means the embedded CRC32 does not match, so the token was
	// mistyped, truncated or made up.
	ErrChecksum = fmt.Errorf("%w: checksum mismatch", ErrInvalidToken)
)

// New mints a token of the given kind: slw_<kind>_<body><checksum>, where
// body is 30 bytes from crypto/rand in fixed-width base62 and checksum is
// the CRC32 of everything before it. The result is shown to the user once
// and only its [Hash] is stored.
func New(kind Kind) (string, error) {
	if !kinds[kind] {
		return "", ErrUnknownKind
	}
	var raw [bodyBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		// Not reachable with Go's crypto/rand (it crashes rather than
		// returning an error), but kept so a future change cannot mint a
		// zero token silently.
		return "", fmt.Errorf("secret: reading randomness: %w", err)
	}
	defer clear(raw[:])
	return format(kind, raw[:]), nil
}

// format lays out a token from its kind and random bytes; it is separate
// from New so tests can build tokens from chosen bytes.
func format(kind Kind, raw []byte) string {
	var b strings.Builder
	b.Grow(maxTokenLen)
	b.WriteString(prefix)
	b.WriteString(string(kind))
	b.WriteByte('_')
	b.WriteString(encodeBase62(raw, bodyLen))
	b.WriteString(checksum(b.String()))
	return b.String()
}

// Parse checks that token is well formed — prefix, known kind, length,
// alphabet and checksum — and returns its kind. It needs no database, so the
// auth path can reject garbage and typos cheaply before hashing and looking
// anything up. A nil error does not mean the token is valid, only that it
// could be: the lookup by [Hash] decides that.
func Parse(token string) (Kind, error) {
	if len(token) > maxTokenLen || !strings.HasPrefix(token, prefix) {
		return "", ErrMalformedToken
	}
	rest := token[len(prefix):]
	sep := strings.IndexByte(rest, '_')
	if sep < 0 {
		return "", ErrMalformedToken
	}
	kind, tail := Kind(rest[:sep]), rest[sep+1:]
	if len(tail) != tailLen || !isBase62(tail) {
		return "", ErrMalformedToken
	}
	if !kinds[kind] {
		return "", ErrUnknownKind
	}
	body := token[:len(token)-checksumLen]
	// The checksum is not secret, but comparing in constant time costs
	// nothing and keeps every comparison in this package uniform.
	if !Equal(checksum(body), token[len(body):]) {
		return "", ErrChecksum
	}
	return kind, nil
}

// Hash returns the hex SHA-256 of a token; this is what gets stored and
// indexed, never the token itself.
//
// A fast, unsalted hash is the right tool here, as it is for GitHub's
// tokens: a token carries at least 178 bits of randomness (240 for the ones
// New mints, and bootstrap tokens are at least 32 characters), so an
// attacker holding the hash table cannot brute-force or precompute their way
// back to a token however fast the hash is. Password KDFs such as argon2 buy
// protection only for low-entropy secrets, and would make every API request
// pay tens of milliseconds and tens of megabytes. Being unsalted and
// deterministic is what lets the digest be a unique lookup key.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Equal reports whether a and b are equal in time that depends only on
// their lengths, not on where they first differ, so comparing a presented
// secret (or its hash) against a stored one leaks nothing through timing.
// Compare values of fixed length, such as [Hash] outputs, so the length
// check leaks nothing either.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// keyIDPrefix marks API credential key ids. It differs from the token prefix
// so that a key id is never mistaken for (or scanned as) a secret.
const keyIDPrefix = "slwk_"

// keyIDLen is the number of base62 characters after keyIDPrefix: about 119
// bits, so ids never collide in practice and cannot be enumerated.
const keyIDLen = 20

// NewKeyID returns a fresh API credential key id, slwk_ followed by 20
// random base62 characters. The key id is the public half of an API
// credential (the HTTP Basic username); it is not a secret, so it carries no
// checksum and may be stored and logged as is. The secret half is a token
// from New(KindAPISecret).
func NewKeyID() (string, error) {
	out := make([]byte, 0, len(keyIDPrefix)+keyIDLen)
	out = append(out, keyIDPrefix...)
	// Rejection sampling keeps every character uniform: bytes >= 248
	// (4*62) are dropped instead of being folded onto the low digits.
	var buf [32]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("secret: reading randomness: %w", err)
		}
		for _, c := range buf {
			if c < 4*62 && len(out) < cap(out) {
				out = append(out, base62Alphabet[c%62])
			}
		}
	}
	return string(out), nil
}

// ValidKeyID reports whether id has the shape NewKeyID produces, so HTTP
// Basic usernames that cannot be key ids are turned away before a lookup.
func ValidKeyID(id string) bool {
	return len(id) == len(keyIDPrefix)+keyIDLen &&
		strings.HasPrefix(id, keyIDPrefix) &&
		isBase62(id[len(keyIDPrefix):])
}

// checksum is the CRC32 (IEEE) of s as six base62 digits. CRC32 is not a
// security measure; it lets scanners and Parse tell a real token from a
// random string that happens to match Pattern (false-positive rate 2^-32).
func checksum(s string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE([]byte(s)))
	return encodeBase62(b[:], checksumLen)
}

// base62Alphabet puts digits first, then upper case, then lower case, as
// GitHub's tokens do, so the digit value matches ASCII order.
const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// encodeBase62 writes the big-endian number in b as exactly width base62
// digits, most significant first, padded with '0'. It is schoolbook long
// division rather than math/big so that the amount of work depends only on
// len(b) and width, never on the (secret) value. It panics if the value does
// not fit, which would be a programming error in the width constants.
func encodeBase62(b []byte, width int) string {
	num := make([]byte, len(b))
	copy(num, b)
	out := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		var rem uint
		for j := range num {
			acc := rem<<8 | uint(num[j])
			num[j] = byte(acc / 62)
			rem = acc % 62
		}
		out[i] = base62Alphabet[rem]
	}
	var rest byte
	for _, c := range num {
		rest |= c
	}
	clear(num)
	if rest != 0 {
		panic("secret: base62 width too small")
	}
	return string(out)
}

// isBase62 reports whether every byte of s is in base62Alphabet.
func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
