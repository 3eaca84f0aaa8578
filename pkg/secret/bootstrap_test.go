package secret

import (
	"errors"
	"strings"
	"testing"
)

func TestValidBootstrap(t *testing.T) {
	ok32 := strings.Repeat("a", 32)
	for name, c := range map[string]struct {
		in   string
		want error
	}{
		"exactly 32":        {ok32, nil},
		"long mixed":        {"Zx9!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789", nil},
		"slipway token":     {"slw_pat_" + strings.Repeat("0", tailLen), nil},
		"empty":             {"", ErrBootstrapTooShort},
		"31":                {ok32[:31], ErrBootstrapTooShort},
		"31 plus newline":   {ok32[:31] + "\n", ErrBootstrapCharset},
		"trailing newline":  {ok32 + "\n", ErrBootstrapCharset},
		"inner space":       {ok32[:16] + " " + ok32[16:], ErrBootstrapCharset},
		"tab":               {ok32 + "\t", ErrBootstrapCharset},
		"nul":               {ok32 + "\x00", ErrBootstrapCharset},
		"del":               {ok32 + "\x7f", ErrBootstrapCharset},
		"non-ascii":         {ok32 + "é", ErrBootstrapCharset},
		"non-breaking spce": {ok32 + "\u00a0", ErrBootstrapCharset},
		"32 bytes of utf-8": {strings.Repeat("é", 16), ErrBootstrapCharset},
	} {
		t.Run(name, func(t *testing.T) {
			err := ValidBootstrap(c.in)
			if c.want == nil {
				if err != nil {
					t.Fatalf("ValidBootstrap = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidBootstrap) {
				t.Fatalf("ValidBootstrap = %v, want %v", err, c.want)
			}
			if len(c.in) >= 8 && strings.Contains(err.Error(), c.in[:8]) {
				t.Fatalf("error %q echoes the value", err)
			}
		})
	}
}
