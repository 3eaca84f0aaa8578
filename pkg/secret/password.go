package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MaxPasswordLen is the longest password, in bytes, that HashPassword
// accepts. Argon2 itself has no practical limit, but an upper bound stops a
// request carrying megabytes of "password" from costing more than a normal
// login, and 1024 bytes is far beyond any passphrase or password manager.
const MaxPasswordLen = 1024

// argonParams are the argon2id cost parameters recorded in every PHC string.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32 // passes over memory
	threads uint8  // lanes
	saltLen uint32 // bytes
	keyLen  uint32 // bytes
}

// defaultParams follow RFC 9106 §4's second recommended option (argon2id,
// m = 64 MiB, t = 3, p = 4), meant for settings where the 2 GiB of the
// first option is unaffordable, as it is on a small self-hosted control
// plane. That is well above OWASP's minimums (m = 19 MiB with t = 2, or
// m = 46 MiB with t = 1): 192 MiB-passes against their 38-46. t = 3 rather
// than 1 because single-pass argon2id is the configuration most exposed to
// time-memory trade-off attacks. p = 4 lets Go's implementation spread the
// lanes over cores, so a verification takes about 85 ms on two cores
// (measured with golang.org/x/crypto v0.58.0) instead of ~145 ms with p = 1,
// without making an attacker's job any cheaper. Raise them over time;
// VerifyPassword reports needsRehash so stored hashes follow.
var defaultParams = argonParams{
	memory:  64 * 1024,
	time:    3,
	threads: 4,
	saltLen: 16,
	keyLen:  32,
}

// current is what HashPassword uses and what needsRehash compares against.
// It is a variable, not exported, only so the package's tests can swap in
// cheap parameters; production code never changes it.
var current = defaultParams

// Limits on parameters read back from a stored hash. They are generous, and
// exist so a corrupted or tampered row cannot make one login allocate
// gigabytes or run for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	minSaltLen   = 8 // the PHC/argon2 minimum
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	maxEncoded   = 512
)

// hashSlots bounds how many argon2 computations run at once. Each one holds
// 64 MiB for its duration, so without a bound a burst of logins — or an
// attacker's — could run the process out of memory. Beyond GOMAXPROCS more
// concurrency buys no throughput (the work is CPU-bound), and the cap of 8
// keeps the worst case near 512 MiB on large machines. Callers still need
// per-account and per-IP rate limiting; this only protects memory.
var hashSlots = make(chan struct{}, min(max(runtime.GOMAXPROCS(0), 1), 8))

// Errors returned by HashPassword and VerifyPassword. None of them include
// the password or the stored hash.
var (
	// ErrPasswordEmpty means HashPassword was given an empty password.
	ErrPasswordEmpty = errors.New("secret: password is empty")
	// ErrPasswordTooLong means HashPassword was given more than
	// MaxPasswordLen bytes.
	ErrPasswordTooLong = fmt.Errorf("secret: password is longer than %d bytes", MaxPasswordLen)
	// ErrMalformedHash means VerifyPassword could not parse the stored
	// encoding, or its parameters are out of the accepted range. It points
	// at bad data in storage, never at a wrong password.
	ErrMalformedHash = errors.New("secret: malformed password hash")
)

// HashPassword hashes pw with argon2id and a fresh 16-byte salt and returns
// the PHC string $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
// (both in unpadded standard base64), the format other argon2 libraries
// read, so stored hashes are not tied to this package. The password is
// hashed as the exact bytes given; it is not trimmed or normalised.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", ErrPasswordEmpty
	}
	if len(pw) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	p := current
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("secret: reading randomness: %w", err)
	}
	key := derive(pw, salt, p)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword checks pw against a PHC string from HashPassword, using the
// parameters recorded in it, and compares in constant time. A wrong password
// is ok == false with a nil error; err is non-nil only when encoded cannot
// be parsed (ErrMalformedHash), which is a storage problem to alert on.
// needsRehash is true only when ok is true and the stored parameters differ
// from the current ones: the caller then has the plaintext at hand and
// should store a fresh HashPassword(pw), so hashes migrate as users log in.
// Empty and over-long passwords are simply wrong, and are not hashed.
func VerifyPassword(encoded, pw string) (ok, needsRehash bool, err error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	if pw == "" || len(pw) > MaxPasswordLen {
		return false, false, nil
	}
	got := derive(pw, salt, p)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, p != current, nil
}

// dummySalt feeds DummyVerify. Its value is irrelevant: only the cost of
// the computation matters, so a fixed one does.
var dummySalt = make([]byte, defaultParams.saltLen)

// DummyVerify does the same work as VerifyPassword against a hash with the
// current parameters, and throws the result away. Call it when a login
// names an unknown user (or one without a password), so that "no such
// email" and "wrong password" take the same time and the response time
// cannot be used to enumerate accounts. Users whose stored hash has older
// parameters still take a different time until needsRehash migrates them.
func DummyVerify(pw string) {
	if pw == "" || len(pw) > MaxPasswordLen {
		return // VerifyPassword does no hashing for these either
	}
	p := current
	got := derive(pw, dummySalt, p)
	want := make([]byte, len(got))
	_ = subtle.ConstantTimeCompare(got, want)
}

// derive runs argon2id under the concurrency bound and wipes its copy of the
// password afterwards (the caller's string cannot be wiped).
func derive(pw string, salt []byte, p argonParams) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	b := []byte(pw)
	defer clear(b)
	return argon2.IDKey(b, salt, p.time, p.memory, p.threads, p.keyLen)
}

// decode parses a PHC argon2id string strictly: fields in the order
// HashPassword writes them, decimal numbers without signs or leading zeros,
// canonical unpadded base64, and parameters within the limits above. Being
// strict means one password has exactly one accepted encoding of a given
// salt and key, and odd input is rejected rather than guessed at.
func decode(encoded string) (argonParams, []byte, []byte, error) {
	var p argonParams
	if len(encoded) > maxEncoded {
		return p, nil, nil, ErrMalformedHash
	}
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	v, ok := strings.CutPrefix(f[2], "v=")
	if !ok || v != strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	m, okM := param(kv[0], "m=", maxMemoryKiB)
	t, okT := param(kv[1], "t=", maxTime)
	th, okP := param(kv[2], "p=", 255)
	if !okM || !okT || !okP || t < 1 || th < 1 || m < 8*th {
		return p, nil, nil, ErrMalformedHash
	}
	salt, okS := b64(f[4])
	key, okK := b64(f[5])
	if !okS || !okK || len(salt) < minSaltLen || len(salt) > maxSaltLen ||
		len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, ErrMalformedHash
	}
	p = argonParams{
		memory:  uint32(m),
		time:    uint32(t),
		threads: uint8(th),
		saltLen: uint32(len(salt)),
		keyLen:  uint32(len(key)),
	}
	return p, salt, key, nil
}

// param parses "<name><decimal>" with no sign or leading zero and a value
// of at most limit.
func param(s, name string, limit uint64) (uint64, bool) {
	d, ok := strings.CutPrefix(s, name)
	if !ok || d == "" || len(d) > 10 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(d, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

// b64 decodes unpadded standard base64 and accepts only the canonical
// form. The round trip rejects non-zero trailing bits and also the CR/LF
// that Go's decoder silently skips, even in Strict mode.
func b64(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
