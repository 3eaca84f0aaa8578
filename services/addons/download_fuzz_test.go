package addons

import (
	"testing"
	"time"
)

// FuzzOpenDownload: a download token is untrusted input. Whatever it is,
// opening it does not panic, and a token that opens is exactly the one
// Slipway signed for its claim: no other spelling of a link works.
func FuzzOpenDownload(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := &Service{opts: Options{DownloadKey: []byte("0123456789abcdef0123456789abcdef"), Clock: func() time.Time { return now }}}
	valid := s.signDownload(downloadClaim{Team: "t", Project: "p", Addon: "a", Backup: "b", Expires: now.Unix() + 60})
	for _, seed := range []string{valid, valid + "A", "", ".", "e30.", valid[:len(valid)-1] + "B", "%%.%%"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.openDownload(token)
		if err != nil {
			return
		}
		if again := s.signDownload(c); again != token {
			t.Fatalf("token %q opened as %+v, whose link is %q", token, c, again)
		}
	})
}
