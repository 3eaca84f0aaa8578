package testenv_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestDNS resolves names set on the DNS server through its resolver,
// answers that change between lookups, and NXDOMAIN for the others.
func TestDNS(t *testing.T) {
	d := testenv.StartDNS(t)
	r := d.Resolver()
	ctx := context.Background()
	lookup := func(name string) ([]netip.Addr, error) {
		return r.LookupNetIP(ctx, "ip", name)
	}
	v4, v6 := netip.MustParseAddr("127.1.2.3"), netip.MustParseAddr("::1")
	d.Set("Git.Example.test.", v4, v6)
	got, err := lookup("git.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[netip.Addr]bool{v4: true, v6: true}; len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("addresses %v, want %v and %v", got, v4, v6)
	}
	other := netip.MustParseAddr("10.0.0.1")
	d.Set("git.example.test", other)
	if got, err := lookup("git.example.test"); err != nil || !reflect.DeepEqual(got, []netip.Addr{other}) {
		t.Errorf("after a change: %v, %v", got, err)
	}
	var dnsErr *net.DNSError
	if got, err := lookup("nothing.example.test"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("an unknown name: %v, %v", got, err)
	}
	d.Set("git.example.test")
	if _, err := lookup("git.example.test"); err == nil {
		t.Error("a removed name still resolves")
	}
}
