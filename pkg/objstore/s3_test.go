package objstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func s3Config(srv *testenv.S3Server, prefix string) objstore.S3Config {
	return objstore.S3Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, Prefix: prefix,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: objstore.DefaultPathStyle(srv.Endpoint),
	}
}

func newS3(t *testing.T, cfg objstore.S3Config) *objstore.S3 {
	t.Helper()
	st, err := objstore.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestS3Contract runs the Store contract against a real S3 server
// (versitygw), which checks every request's SigV4 signature.
func TestS3Contract(t *testing.T) {
	srv := testenv.S3(t)
	testContract(t, newS3(t, s3Config(srv, "slipway/backups")))
}

func TestS3PrefixPlacesObjects(t *testing.T) {
	srv := testenv.S3(t)
	st := newS3(t, s3Config(srv, "/team-a/backups/"))
	if _, _, err := st.Put(context.Background(), "p/a/b.dump", strings.NewReader("dump")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(srv.Dir, srv.Bucket, "team-a", "backups", "p", "a", "b.dump"))
	if err != nil || string(b) != "dump" {
		t.Fatalf("object on the server's disk: %q, %v", b, err)
	}
	// Another prefix in the same bucket sees none of it.
	other := newS3(t, s3Config(srv, "team-b"))
	if list, err := other.List(context.Background(), ""); err != nil || len(list) != 0 {
		t.Fatalf("List under another prefix = %+v, %v", list, err)
	}
}

// TestS3FailuresAreErrors: every way the destination can be wrong is an
// error that says which, never a silent success (coolify#7779).
func TestS3FailuresAreErrors(t *testing.T) {
	srv := testenv.S3(t)
	ctx := context.Background()
	cases := map[string]struct {
		mutate func(*objstore.S3Config)
		code   string
		auth   bool
	}{
		"wrong secret key": {func(c *objstore.S3Config) { c.SecretKey += "x" }, "SignatureDoesNotMatch", true},
		// AWS says InvalidAccessKeyId; versitygw its own code (and 404).
		"unknown access key": {func(c *objstore.S3Config) { c.AccessKey = "NOSUCHKEY" }, "", true},
		"missing bucket":     {func(c *objstore.S3Config) { c.Bucket = "no-such-bucket" }, "NoSuchBucket", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := s3Config(srv, "")
			tc.mutate(&cfg)
			st := newS3(t, cfg)
			_, _, err := st.Put(ctx, "x", strings.NewReader("x"))
			var re *objstore.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("Put = %v, want a RemoteError", err)
			}
			if (tc.code != "" && re.Code != tc.code) || re.Auth() != tc.auth {
				t.Fatalf("Put = %v (code %q auth %v), want %q auth %v", err, re.Code, re.Auth(), tc.code, tc.auth)
			}
			if err := objstore.Probe(ctx, st, "probe"); !errors.As(err, &re) {
				t.Fatalf("Probe = %v, want a RemoteError", err)
			}
		})
	}
	t.Run("server down", func(t *testing.T) {
		st := newS3(t, s3Config(srv, ""))
		srv.Stop()
		_, _, err := st.Put(ctx, "x", strings.NewReader("x"))
		var re *objstore.RemoteError
		if !errors.As(err, &re) || re.Code != "Unreachable" {
			t.Fatalf("Put to a stopped server = %v", err)
		}
	})
}

func TestNewS3RefusesBadConfig(t *testing.T) {
	good := objstore.S3Config{Endpoint: "s3.us-west-2.amazonaws.com", Region: "us-west-2", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	if _, err := objstore.NewS3(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*objstore.S3Config){
		"no bucket":        func(c *objstore.S3Config) { c.Bucket = "" },
		"no secret":        func(c *objstore.S3Config) { c.SecretKey = "" },
		"endpoint path":    func(c *objstore.S3Config) { c.Endpoint = "https://s3.example.com/bucket" },
		"endpoint scheme":  func(c *objstore.S3Config) { c.Endpoint = "ftp://s3.example.com" },
		"endpoint user":    func(c *objstore.S3Config) { c.Endpoint = "https://u:p@s3.example.com" },
		"prefix traversal": func(c *objstore.S3Config) { c.Prefix = "a/../b" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := objstore.NewS3(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if objstore.DefaultPathStyle("s3.us-west-2.amazonaws.com") || !objstore.DefaultPathStyle("http://127.0.0.1:9000") || !objstore.DefaultPathStyle("https://acc.r2.cloudflarestorage.com") {
		t.Error("DefaultPathStyle")
	}
}
