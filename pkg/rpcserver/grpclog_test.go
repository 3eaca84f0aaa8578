package rpcserver_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/grpclog"

	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// TestLogTo: gRPC's and grpc-gateway's own lines become structured
// records of the process's logger, not unstructured stderr lines.
func TestLogTo(t *testing.T) {
	var out syncBuffer
	rpcserver.LogTo(slog.New(slog.NewJSONHandler(&out, nil)))
	defer rpcserver.LogTo(slog.New(slog.DiscardHandler))
	grpclog.Errorf("Failed to parse Content-Type %s", "x;;")
	grpclog.Warningln("careful", 2)
	grpclog.Info("connectivity chatter") // a debug record: not at info level
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %q, want two records", lines)
	}
	for i, want := range []struct{ level, msg string }{{"ERROR", "Failed to parse Content-Type x;;"}, {"WARN", "careful 2"}} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatalf("not a structured record: %q", lines[i])
		}
		if rec["level"] != want.level || rec["msg"] != want.msg || rec["source"] != "grpc" {
			t.Errorf("record %v, want level %s, msg %q, source grpc", rec, want.level, want.msg)
		}
	}
	if grpclog.V(2) {
		t.Error("verbose gRPC logging on without debug records")
	}
}
