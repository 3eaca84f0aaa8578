package secret

import (
	"bytes"
	"errors"
	"testing"
)

func TestBox(t *testing.T) {
	master := bytes.Repeat([]byte("k"), 32)
	b, err := NewBox(master, "jobs-env")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"PASSWORD":"hunter2"}`)
	s1, s2 := b.Seal(plain), b.Seal(plain)
	if bytes.Equal(s1, s2) || bytes.Contains(s1, []byte("hunter2")) {
		t.Fatalf("sealing is not randomized or leaks the plaintext: %x", s1)
	}
	if got, err := b.Open(s1); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := NewBox(master, "other-purpose")
	if _, err := other.Open(s1); !errors.Is(err, ErrSealed) {
		t.Fatalf("a box for another purpose opened the data: %v", err)
	}
	tampered := bytes.Clone(s1)
	tampered[len(tampered)-1] ^= 1
	for _, bad := range [][]byte{nil, {1}, tampered, append([]byte{2}, s1[1:]...)} {
		if _, err := b.Open(bad); !errors.Is(err, ErrSealed) {
			t.Fatalf("Open(%x) = %v, want ErrSealed", bad, err)
		}
	}
	if _, err := NewBox([]byte("short"), "x"); err == nil {
		t.Fatal("a short master key was accepted")
	}
}
