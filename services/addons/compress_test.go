package addons

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"math/rand/v2"
	"testing"
)

// dumpLike is n bytes like a pg_dump -Fc stream: mostly already
// compressed (random) data, with some repetitive text between.
func dumpLike(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, 0, n)
	for len(out) < n {
		chunk := make([]byte, 48<<10)
		for i := range chunk {
			chunk[i] = byte(r.Uint32())
		}
		out = append(out, chunk...)
		out = append(out, bytes.Repeat([]byte("COPY public.items (id, payload) FROM stdin;\n"), 64)...)
	}
	return out[:n]
}

// TestGzipBackupsAreStandard: a "gz" backup is a standard gzip file
// (what a download gives to gunzip), and backups written as standard
// gzip (before Slipway's compressor changed, or imported) still read.
func TestGzipBackupsAreStandard(t *testing.T) {
	data := dumpLike(3 << 20)

	var ours bytes.Buffer
	w, err := compressor(&ours, "gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	std, err := stdgzip.NewReader(bytes.NewReader(ours.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(std)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the standard library reads back %d bytes (want %d): %v", len(got), len(data), err)
	}

	var theirs bytes.Buffer
	sw := stdgzip.NewWriter(&theirs)
	sw.Write(data)
	sw.Close()
	r, err := decompressor(bytes.NewReader(theirs.Bytes()), "gz")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a standard gzip file reads back %d bytes (want %d): %v", len(got), len(data), err)
	}
	// A damaged file is an error, not short data.
	damaged := bytes.Clone(theirs.Bytes())
	damaged[len(damaged)-5] ^= 0xff // the CRC-32 in the trailer
	r, err = decompressor(bytes.NewReader(damaged), "gz")
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Fatal("a damaged gzip file read without an error")
	}
}

// BenchmarkGzip is the CPU a "gz" backup costs Slipway per byte of a
// dump: compressing it (the backup) and decompressing it (a restore's
// and a verification's fetch).
func BenchmarkGzip(b *testing.B) {
	data := dumpLike(16 << 20)
	var packed bytes.Buffer
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			packed.Reset()
			w, _ := compressor(&packed, "gz")
			w.Write(data)
			w.Close()
		}
	})
	b.Run("decompress", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, _ := decompressor(bytes.NewReader(packed.Bytes()), "gz")
			io.Copy(io.Discard, r)
			r.Close()
		}
	})
}
