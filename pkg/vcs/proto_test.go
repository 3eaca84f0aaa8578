package vcs_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

// TestCredentialsProtoRoundTrip converts credentials to the API's message
// and back: every field survives, nil stays nil and an empty message an
// empty (not nil) Credentials; and every field of the message is one
// Credentials carries, so a field added to the proto fails here until the
// conversion takes it.
func TestCredentialsProtoRoundTrip(t *testing.T) {
	full := &vcs.Credentials{Username: "bot", Password: "t0ken", PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----", KnownHosts: "[git.example.com]:2222 ssh-ed25519 AAAA"}
	for _, c := range []*vcs.Credentials{full, {Username: "u"}, {Password: "p"}, {PrivateKey: "k"}, {KnownHosts: "h"}, {}} {
		p := c.Proto()
		if back := vcs.CredentialsFromProto(p); back == nil || *back != *c {
			t.Errorf("%+v came back as %+v", c, back)
		}
		// Through the wire too.
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q deploymentsv1.VcsCredentials
		if err := proto.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		if back := vcs.CredentialsFromProto(&q); back == nil || *back != *c {
			t.Errorf("%+v came back over the wire as %+v", c, back)
		}
	}
	if p := (*vcs.Credentials)(nil).Proto(); p != nil {
		t.Errorf("nil credentials: %v", p)
	}
	if c := vcs.CredentialsFromProto(nil); c != nil {
		t.Errorf("no message: %+v", c)
	}

	p := full.Proto()
	set := 0
	p.ProtoReflect().Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool { set++; return true })
	if n := p.ProtoReflect().Descriptor().Fields().Len(); set != n {
		t.Errorf("the conversion sets %d of the message's %d fields", set, n)
	}
}
