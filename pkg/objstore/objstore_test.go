package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/objstore"
)

// badKeys are refused by every operation of every store.
var badKeys = []string{
	"", "/etc/passwd", "../outside", "a/../../outside", "a/..", "..", ".", "a/./b", "a//b", "a/",
	`a\b`, "a\x00b", "a/\nb", ".slipway-upload-x", "a/.slipway-upload-y",
}

// failingReader yields n bytes and then an error, like a dump that dies.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("dump process died")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	f.n -= len(p)
	return len(p), nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func get(t *testing.T, st objstore.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// testContract is the Store contract, run against every implementation.
func testContract(t *testing.T, st objstore.Store) {
	ctx := context.Background()

	t.Run("put get stat", func(t *testing.T) {
		data := randomBytes(t, 100_000)
		n, s, err := st.Put(ctx, "p1/a1/b1.dump", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(data)) || s != sum(data) {
			t.Fatalf("Put = %d %s, want %d %s", n, s, len(data), sum(data))
		}
		if got := get(t, st, "p1/a1/b1.dump"); !bytes.Equal(got, data) {
			t.Fatal("Get returned other bytes")
		}
		o, err := st.Stat(ctx, "p1/a1/b1.dump")
		if err != nil || o.Size != int64(len(data)) || o.Key != "p1/a1/b1.dump" || o.ModTime.IsZero() {
			t.Fatalf("Stat = %+v, %v", o, err)
		}
	})

	t.Run("empty object", func(t *testing.T) {
		n, s, err := st.Put(ctx, "empty", bytes.NewReader(nil))
		if err != nil || n != 0 || s != sum(nil) {
			t.Fatalf("Put empty = %d %s %v", n, s, err)
		}
		if got := get(t, st, "empty"); len(got) != 0 {
			t.Fatalf("got %d bytes", len(got))
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		for _, v := range []string{"first", "second"} {
			if _, _, err := st.Put(ctx, "over", strings.NewReader(v)); err != nil {
				t.Fatal(err)
			}
		}
		if got := string(get(t, st, "over")); got != "second" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("missing", func(t *testing.T) {
		if _, err := st.Get(ctx, "nope/nothing"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Get missing: %v", err)
		}
		if _, err := st.Stat(ctx, "nope/nothing"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Stat missing: %v", err)
		}
		if err := st.Delete(ctx, "nope/nothing"); err != nil {
			t.Fatalf("Delete missing: %v", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if _, _, err := st.Put(ctx, "del/x", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "del/x"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(ctx, "del/x"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("after Delete: %v", err)
		}
		if err := st.Delete(ctx, "del/x"); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"l/b/2", "l/a/1", "l/a/10", "l/ab", "lx/1"} {
			if _, _, err := st.Put(ctx, k, strings.NewReader(k)); err != nil {
				t.Fatal(err)
			}
		}
		cases := map[string][]string{
			"l/":   {"l/a/1", "l/a/10", "l/ab", "l/b/2"},
			"l/a":  {"l/a/1", "l/a/10", "l/ab"},
			"l/a/": {"l/a/1", "l/a/10"},
			"l/z":  nil,
			"q/":   nil,
		}
		for prefix, want := range cases {
			got, err := st.List(ctx, prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			var keys []string
			for _, o := range got {
				keys = append(keys, o.Key)
				if o.Size != int64(len(o.Key)) {
					t.Errorf("List(%q): %s size %d", prefix, o.Key, o.Size)
				}
			}
			if strings.Join(keys, ",") != strings.Join(want, ",") {
				t.Errorf("List(%q) = %v, want %v", prefix, keys, want)
			}
		}
	})

	t.Run("refused keys", func(t *testing.T) {
		for _, k := range badKeys {
			if _, _, err := st.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Put(%q): %v", k, err)
			}
			if _, err := st.Get(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Get(%q): %v", k, err)
			}
			if _, err := st.Stat(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Stat(%q): %v", k, err)
			}
			if err := st.Delete(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Delete(%q): %v", k, err)
			}
		}
		if _, err := st.List(ctx, "../"); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(../): %v", err)
		}
	})

	t.Run("failed upload leaves the old object", func(t *testing.T) {
		if _, _, err := st.Put(ctx, "atomic/obj", strings.NewReader("old")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Put(ctx, "atomic/obj", &failingReader{n: 50_000}); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		if got := string(get(t, st, "atomic/obj")); got != "old" {
			t.Fatalf("after failed Put: %q", got)
		}
		if _, _, err := st.Put(ctx, "atomic/new", &failingReader{n: 50_000}); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		if _, err := st.Stat(ctx, "atomic/new"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("a failed Put left an object: %v", err)
		}
		list, err := st.List(ctx, "atomic/")
		if err != nil || len(list) != 1 || list[0].Key != "atomic/obj" {
			t.Fatalf("List after failed Puts = %+v, %v", list, err)
		}
	})

	t.Run("cancelled upload", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(make([]byte, 1000))
			cancel()
			_, _ = pw.Write(make([]byte, 1000))
			_ = pw.Close()
		}()
		if _, _, err := st.Put(cctx, "cancel/x", pr); err == nil {
			t.Fatal("cancelled Put succeeded")
		}
		if _, err := st.Stat(ctx, "cancel/x"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("a cancelled Put left an object: %v", err)
		}
	})

	t.Run("large object", func(t *testing.T) {
		// Past one S3 part (16 MiB): the multipart path.
		data := randomBytes(t, 16<<20+12345)
		n, s, err := st.Put(ctx, "big/obj", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(data)) || s != sum(data) {
			t.Fatalf("Put = %d %s", n, s)
		}
		if got := get(t, st, "big/obj"); !bytes.Equal(got, data) {
			t.Fatal("large object read back differs")
		}
	})

	t.Run("probe", func(t *testing.T) {
		if err := objstore.Probe(ctx, st, "probe/check"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(ctx, "probe/check"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Probe left its object: %v", err)
		}
	})
}
