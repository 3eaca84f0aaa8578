package testenv

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a throwaway DNS server on 127.0.0.1 (UDP) that answers A and
// AAAA queries for the names a test sets and NXDOMAIN for every other
// one. Code that takes a *net.Resolver gets Resolver: a test then gives
// host names that resolve to loopback (or any) addresses, and changes
// their answers between lookups as a rebinding server would, without
// touching the system's resolver or /etc/hosts — and those names do not
// resolve for any other program, which is what shows that a program was
// handed the address instead of looking the name up itself.
type DNS struct {
	// Addr is the server's UDP address on 127.0.0.1.
	Addr string

	mu    sync.Mutex
	names map[string][]netip.Addr
}

// StartDNS starts a DNS server with no names; it stops when the test
// ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv.StartDNS: %v", err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), names: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out, ok := d.answer(buf[:n]); ok {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

// Set makes name resolve to addrs (none: NXDOMAIN again). The name is
// matched case-insensitively, with or without a trailing dot.
func (d *DNS) Set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(addrs) == 0 {
		delete(d.names, dnsKey(name))
		return
	}
	d.names[dnsKey(name)] = append([]netip.Addr(nil), addrs...)
}

// Resolver is a pure-Go resolver that sends every query to this server
// (names in /etc/hosts are still answered from there first, as by any
// resolver).
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.Addr)
		},
	}
}

func dnsKey(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// answer is the response to the query msg; false when msg is not one.
func (d *DNS) answer(msg []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	d.mu.Lock()
	addrs, known := d.names[dnsKey(q.Name.String())]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
	for _, a := range addrs {
		var err error
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
