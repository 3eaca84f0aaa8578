package secret

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var allKinds = []Kind{KindPersonal, KindTeam, KindOAuthAccess, KindOAuthRefresh, KindAPISecret}

var anchored = regexp.MustCompile(`^(?:` + Pattern + `)$`)

func mustNew(t testing.TB, k Kind) string {
	t.Helper()
	tok, err := New(k)
	if err != nil {
		t.Fatalf("New(%q): %v", k, err)
	}
	return tok
}

// noEcho fails if err's message contains any 8-character window of the
// rejected input's part after the prefix.
func noEcho(t *testing.T, err error, tok string) {
	t.Helper()
	s := strings.TrimPrefix(tok, prefix)
	for i := 0; i+8 <= len(s); i++ {
		if strings.Contains(err.Error(), s[i:i+8]) {
			t.Fatalf("error %q echoes the token", err)
		}
	}
}

func TestNewParseRoundTrip(t *testing.T) {
	for _, k := range allKinds {
		tok := mustNew(t, k)
		if want := len(prefix) + len(k) + 1 + tailLen; len(tok) != want {
			t.Errorf("len(%s token) = %d, want %d", k, len(tok), want)
		}
		if !strings.HasPrefix(tok, "slw_"+string(k)+"_") {
			t.Errorf("%s token has wrong prefix", k)
		}
		got, err := Parse(tok)
		if err != nil || got != k {
			t.Errorf("Parse(New(%q)) = %q, %v", k, got, err)
		}
		if !anchored.MatchString(tok) {
			t.Errorf("%s token does not match Pattern", k)
		}
		// Scanners see tokens embedded in text.
		text := fmt.Sprintf("export SLIPWAY_TOKEN=%s\n# %q", tok, tok)
		if n := len(regexp.MustCompile(Pattern).FindAllString(text, -1)); n != 2 {
			t.Errorf("Pattern found %d tokens in text, want 2", n)
		}
	}
}

func TestNewUnknownKind(t *testing.T) {
	for _, k := range []Kind{"", "ghp", "PAT", "pat_", "slwk"} {
		if tok, err := New(k); !errors.Is(err, ErrUnknownKind) || tok != "" {
			t.Errorf("New(%q) = %q, %v; want ErrUnknownKind", k, tok, err)
		}
	}
}

// TestEdgeBodies checks that the smallest and largest bodies keep the fixed
// length (left-padding) and parse.
func TestEdgeBodies(t *testing.T) {
	for _, fill := range []byte{0x00, 0xff} {
		tok := format(KindPersonal, bytes.Repeat([]byte{fill}, bodyBytes))
		if _, err := Parse(tok); err != nil {
			t.Errorf("body of %#x bytes: Parse: %v", fill, err)
		}
		if !anchored.MatchString(tok) {
			t.Errorf("body of %#x bytes does not match Pattern", fill)
		}
	}
	if tok := format(KindTeam, make([]byte, bodyBytes)); !strings.HasPrefix(tok, "slw_tt_"+strings.Repeat("0", bodyLen)) {
		t.Errorf("zero body not left-padded: %s", tok)
	}
}

func TestParseRejects(t *testing.T) {
	tok := mustNew(t, KindPersonal)
	tail := tok[len("slw_pat_"):]
	// A token whose kind is unknown but whose checksum is right, so only
	// the kind check can catch it.
	badKind := "slw_xyz_" + tail[:bodyLen]
	badKind += checksum(badKind)

	cases := map[string]struct {
		in   string
		want error
	}{
		"empty":              {"", ErrMalformedToken},
		"prefix only":        {"slw_", ErrMalformedToken},
		"no kind separator":  {"slw_pat" + tail, ErrMalformedToken},
		"github prefix":      {"ghp_" + tok[4:], ErrMalformedToken},
		"upper-case prefix":  {"SLW_" + tok[4:], ErrMalformedToken},
		"hyphen prefix":      {"slw-" + tok[4:], ErrMalformedToken},
		"key id":             {"slwk_" + tail[:keyIDLen], ErrMalformedToken},
		"truncated":          {tok[:len(tok)-1], ErrMalformedToken},
		"extra char":         {tok + "a", ErrMalformedToken},
		"trailing newline":   {tok + "\n", ErrMalformedToken},
		"leading space":      {" " + tok, ErrMalformedToken},
		"way too long":       {tok + strings.Repeat("a", 1000), ErrMalformedToken},
		"hyphen in body":     {tok[:20] + "-" + tok[21:], ErrMalformedToken},
		"underscore in body": {tok[:20] + "_" + tok[21:], ErrMalformedToken},
		"plus in body":       {tok[:20] + "+" + tok[21:], ErrMalformedToken},
		"non-ascii in body":  {tok[:20] + "é" + tok[22:], ErrMalformedToken},
		"unknown kind":       {badKind, ErrUnknownKind},
		"empty kind":         {"slw__" + tail, ErrUnknownKind},
		"upper-case kind":    {"slw_PAT_" + tail, ErrUnknownKind},
		// The checksum covers the kind, so relabelling a token breaks it.
		"kind swapped":   {"slw_oat_" + tail, ErrChecksum},
		"checksum zeros": {tok[:len(tok)-checksumLen] + "000000", ErrChecksum},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			k, err := Parse(c.in)
			if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidToken) || k != "" {
				t.Fatalf("Parse = %q, %v; want %v", k, err, c.want)
			}
			noEcho(t, err, c.in)
		})
	}
}

// TestParseFlippedChar changes every character after the kind, body and
// checksum alike, to every other base62 digit. CRC32 detects every burst
// error of up to 32 bits, so each change must fail the checksum.
func TestParseFlippedChar(t *testing.T) {
	tok := mustNew(t, KindAPISecret)
	start := len("slw_sk_")
	for i := start; i < len(tok); i++ {
		for j := 0; j < len(base62Alphabet); j++ {
			c := base62Alphabet[j]
			if c == tok[i] {
				continue
			}
			bad := tok[:i] + string(c) + tok[i+1:]
			if _, err := Parse(bad); !errors.Is(err, ErrChecksum) {
				t.Fatalf("flip at %d to %q: err = %v, want ErrChecksum", i, c, err)
			}
		}
	}
}

func TestTokensUniqueAndMatchPattern(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for i := range n {
		tok := mustNew(t, allKinds[i%len(allKinds)])
		if seen[tok] {
			t.Fatalf("duplicate token after %d draws", i)
		}
		seen[tok] = true
		if !anchored.MatchString(tok) {
			t.Fatalf("token %d does not match Pattern", i)
		}
	}
}

// TestPatternMatchesConstants keeps the hand-written Pattern in step with
// the kinds and lengths the code uses.
func TestPatternMatchesConstants(t *testing.T) {
	var names []string
	for k := range kinds {
		names = append(names, string(k))
	}
	sort.Strings(names)
	m := regexp.MustCompile(`^\\bslw_\(([a-z|]+)\)_\[0-9A-Za-z\]\{(\d+)\}\\b$`).FindStringSubmatch(Pattern)
	if m == nil {
		t.Fatalf("Pattern has an unexpected shape: %s", Pattern)
	}
	inPattern := strings.Split(m[1], "|")
	sort.Strings(inPattern)
	if strings.Join(inPattern, ",") != strings.Join(names, ",") {
		t.Errorf("Pattern kinds %v, code kinds %v", inPattern, names)
	}
	if m[2] != fmt.Sprint(tailLen) {
		t.Errorf("Pattern length %s, want %d", m[2], tailLen)
	}
	if len(kinds) != len(allKinds) {
		t.Errorf("allKinds is missing a kind")
	}
}

func TestPatternRejects(t *testing.T) {
	tok := mustNew(t, KindPersonal)
	for _, s := range []string{
		tok[:len(tok)-1],      // too short
		tok + "a",             // too long: \b fails inside a word
		"xslw" + tok[3:],      // glued to a word
		"slw_abc_" + tok[8:],  // unknown kind
		"slwk_abcdefghij1234", // key id, not a secret
	} {
		if regexp.MustCompile(Pattern).MatchString(s) {
			t.Errorf("Pattern matched %q", s)
		}
	}
}

func TestBase62(t *testing.T) {
	for _, c := range []struct {
		in    []byte
		width int
		want  string
	}{
		{[]byte{0}, 2, "00"},
		{[]byte{61}, 2, "0z"},
		{[]byte{62}, 2, "10"},
		{[]byte{0x01, 0x00}, 3, "048"}, // 256 = 4*62 + 8
		{[]byte{0xff, 0xff, 0xff, 0xff}, checksumLen, "4gfFC3"},
	} {
		if got := encodeBase62(c.in, c.width); got != c.want {
			t.Errorf("encodeBase62(%x, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
	}
	// bodyLen is the least width that holds every bodyBytes value.
	largest := bytes.Repeat([]byte{0xff}, bodyBytes)
	if got := encodeBase62(largest, bodyLen); len(got) != bodyLen {
		t.Errorf("max body encodes to %d chars", len(got))
	}
	defer func() {
		if recover() == nil {
			t.Errorf("encodeBase62 of max body in %d chars did not panic; bodyLen is not minimal", bodyLen-1)
		}
	}()
	encodeBase62(largest, bodyLen-1)
}

func TestHash(t *testing.T) {
	// FIPS 180-2 test vector.
	if got, want := Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
	tok := mustNew(t, KindTeam)
	h := Hash(tok)
	if h != Hash(tok) {
		t.Error("Hash is not stable")
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
		t.Errorf("Hash = %q, want 64 lower-case hex digits", h)
	}
	if h == Hash(mustNew(t, KindTeam)) {
		t.Error("different tokens hash the same")
	}
}

func TestEqual(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"", "a", false},
		{Hash("x"), Hash("x"), true},
		{Hash("x"), Hash("y"), false},
	} {
		if got := Equal(c.a, c.b); got != c.want {
			t.Errorf("Equal(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestKeyID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewKeyID()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^slwk_[0-9A-Za-z]{20}$`).MatchString(id) || !ValidKeyID(id) {
			t.Fatalf("bad key id %q", id)
		}
		if regexp.MustCompile(Pattern).MatchString(id) {
			t.Fatalf("key id %q matches the secret Pattern", id)
		}
		if _, err := Parse(id); err == nil {
			t.Fatalf("Parse accepted key id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate key id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "slwk_", "slwk_abc", "slwk_" + strings.Repeat("a", 21),
		"slwx_" + strings.Repeat("a", 20), "slwk_" + strings.Repeat("a", 19) + "-", mustNew(t, KindAPISecret)} {
		if ValidKeyID(bad) {
			t.Errorf("ValidKeyID(%q) = true", bad)
		}
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts is
// a well-formed token of the kind it reports. The seeds run in plain
// `go test`.
func FuzzParse(f *testing.F) {
	for i, k := range allKinds {
		good := format(k, bytes.Repeat([]byte{byte(i * 37)}, bodyBytes))
		f.Add(good)
		f.Add(good[:len(good)-1])
		f.Add(good + "0")
		f.Add(strings.ToUpper(good))
		f.Add(good[:len(good)-checksumLen] + "zzzzzz")
	}
	for _, s := range []string{"", "slw_", "slw__", "slw_pat_", "slw_pat", "ghp_abc", "slwk_" + strings.Repeat("a", 20),
		"slw_pat_" + strings.Repeat("\xff", tailLen), "slw_pat_" + strings.Repeat("0", tailLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		k, err := Parse(tok)
		if err != nil {
			if k != "" || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Parse error %v with kind %q", err, k)
			}
			if len(tok) >= 12 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error %q echoes input", err)
			}
			return
		}
		if !kinds[k] {
			t.Fatalf("accepted unknown kind %q", k)
		}
		if !strings.HasPrefix(tok, prefix+string(k)+"_") || len(tok) != len(prefix)+len(k)+1+tailLen {
			t.Fatalf("accepted %q as %q but its shape disagrees", tok, k)
		}
		body := tok[:len(tok)-checksumLen]
		if checksum(body) != tok[len(body):] {
			t.Fatalf("accepted %q with a bad checksum", tok)
		}
		if !anchored.MatchString(tok) {
			t.Fatalf("accepted %q, which Pattern does not match", tok)
		}
	})
}
