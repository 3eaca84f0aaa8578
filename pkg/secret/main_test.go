package secret

import (
	"os"
	"testing"
)

// cheapParams keep the password tests fast; TestDefaultParams exercises the
// real ones.
var cheapParams = argonParams{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}

func TestMain(m *testing.M) {
	current = cheapParams
	os.Exit(m.Run())
}

// withParams runs f with current set to p and restores it afterwards.
func withParams(t *testing.T, p argonParams) {
	t.Helper()
	old := current
	current = p
	t.Cleanup(func() { current = old })
}
