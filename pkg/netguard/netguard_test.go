package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8":              true,
		"1.1.1.1":              true,
		"2001:4860:4860::8888": true,
		"::ffff:8.8.8.8":       true, // mapped: judged as IPv4
		"64:ff9b::808:808":     true, // NAT64 of 8.8.8.8

		"10.1.2.3":           false,
		"172.16.0.1":         false,
		"192.168.1.1":        false,
		"127.0.0.1":          false,
		"127.255.255.254":    false,
		"169.254.169.254":    false, // cloud metadata
		"100.64.0.1":         false, // carrier-grade NAT
		"0.0.0.0":            false,
		"0.1.2.3":            false, // "this network"
		"192.0.0.8":          false,
		"198.18.0.1":         false,
		"240.0.0.1":          false,
		"255.255.255.255":    false,
		"224.0.0.1":          false, // multicast
		"::":                 false,
		"::1":                false,
		"fe80::1":            false,
		"fe80::1%eth0":       false,
		"fec0::1":            false,
		"fc00::1":            false,
		"fd12:3456::1":       false,
		"ff02::1":            false,
		"::ffff:127.0.0.1":   false, // mapped loopback
		"::ffff:10.0.0.1":    false,
		"::ffff:169.254.1.1": false,
		"64:ff9b::7f00:1":    false, // NAT64 of 127.0.0.1
		"64:ff9b::a00:1":     false, // NAT64 of 10.0.0.1
		"64:ff9b:1::808:808": false, // local-use NAT64
		"::7f00:1":           false, // IPv4-compatible 127.0.0.1
		"::808:808":          false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestAllows(t *testing.T) {
	r, err := Parse(
		[]string{" 127.0.0.1", "10.0.0.0/8", "MinIO.Internal.", "::ffff:192.168.1.0/120", "fd00::/8", "", "both.example", "172.16.0.0/12"},
		[]string{"8.8.8.8", "evil.example", "1.1.1.0/24", "10.9.0.0/16", "both.example", "::ffff:172.16.5.0/120", "2001:db8::/32"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rule *Rule
		host string
		addr string
		want bool
	}{
		// the default: public only
		{nil, "example.com", "93.184.216.34", true},
		{nil, "localhost", "127.0.0.1", false},
		{nil, "x", "::ffff:127.0.0.1", false},
		{nil, "x", "::1", false},
		{nil, "x", "2001:db8::1", true},

		// allowed addresses, mapped or not
		{r, "127.0.0.1", "127.0.0.1", true},
		{r, "x", "::ffff:127.0.0.1", true},
		{r, "x", "127.0.0.2", false},
		{r, "x", "10.1.2.3", true},
		{r, "x", "::ffff:10.1.2.3", true},
		{r, "x", "192.168.1.7", true}, // a mapped CIDR matches IPv4
		{r, "x", "192.168.2.7", false},
		{r, "x", "fd00::5", true},
		{r, "x", "fe80::1%eth0", false},
		// allowed names: any address, names compared without case or final dot
		{r, "minio.internal", "127.0.0.5", true},
		{r, "MINIO.INTERNAL.", "10.200.0.1", true},
		{r, "minio.internal.example", "127.0.0.5", false},
		// deny wins over public
		{r, "x", "8.8.8.8", false},
		{r, "x", "::ffff:8.8.8.8", false},
		{r, "x", "1.1.1.77", false},
		{r, "x", "8.8.4.4", true},
		{r, "evil.example", "8.8.4.4", false},
		{r, "Evil.Example.", "8.8.4.4", false},
		{r, "x", "2001:db8::1", false},
		// deny wins over allow: a CIDR inside an allowed one, a name in both,
		// a denied address behind an allowed name
		{r, "x", "10.9.1.1", false},
		{r, "both.example", "8.8.4.4", false},
		{r, "minio.internal", "10.9.0.1", false},
		{r, "minio.internal", "8.8.8.8", false},
		{r, "x", "172.16.5.9", false},
		{r, "x", "172.16.6.9", true},
	} {
		if got := tc.rule.Allows(tc.host, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("rule %p Allows(%q, %s) = %v, want %v", tc.rule, tc.host, tc.addr, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		allow, deny []string
		want        string
	}{
		{[]string{"10.0.0.0/33"}, nil, `allowed host "10.0.0.0/33"`},
		{[]string{"not/a/cidr"}, nil, `allowed host "not/a/cidr"`},
		{nil, []string{"1.2.3.4/x"}, `denied host "1.2.3.4/x"`},
	} {
		if _, err := Parse(tc.allow, tc.deny); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %q) = %v, want an error with %s", tc.allow, tc.deny, err, tc.want)
		}
	}
	if r, err := Parse(nil, nil); err != nil || !r.Allows("x", netip.MustParseAddr("8.8.8.8")) || r.Allows("x", netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("an empty rule is not the default: %v", err)
	}
}

func TestSplitList(t *testing.T) {
	got := SplitList(" 127.0.0.1, minio.internal,,10.0.0.0/8 ,")
	want := []string{"127.0.0.1", "minio.internal", "10.0.0.0/8"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("SplitList = %q, want %q", got, want)
	}
	if got := SplitList(""); len(got) != 0 {
		t.Fatalf("SplitList(\"\") = %q", got)
	}
}

func TestCheckHost(t *testing.T) {
	ctx := context.Background()
	allowLocal, err := Parse([]string{"localhost", "127.0.0.1", "::1"}, []string{"8.8.8.8"})
	if err != nil {
		t.Fatal(err)
	}
	denyLoopback, err := Parse([]string{"localhost"}, []string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rule    *Rule
		host    string
		refused bool
	}{
		{nil, "127.0.0.1", true},
		{nil, "[::1]", true},
		{nil, "::ffff:127.0.0.1", true},
		{nil, "localhost", true}, // a name resolving to loopback
		{nil, "169.254.169.254", true},
		{nil, "", true},
		{nil, "8.8.8.8", false}, // an address: nothing resolved
		{allowLocal, "localhost", false},
		{allowLocal, "127.0.0.1", false},
		{allowLocal, "8.8.8.8", true},
		{denyLoopback, "localhost", true}, // allowed name, denied addresses
	} {
		err := tc.rule.CheckHost(ctx, tc.host)
		if tc.refused != errors.Is(err, ErrRefused) || !tc.refused && err != nil {
			t.Errorf("CheckHost(%q) = %v, refused %v expected", tc.host, err, tc.refused)
		}
		if err != nil && (strings.Contains(err.Error(), "127.0.0.1") && tc.host == "localhost") {
			t.Errorf("CheckHost(%q) tells the address it resolved to: %v", tc.host, err)
		}
	}
}

// countingServer is an HTTP server on 127.0.0.1 that counts the
// connections it accepts, so a test can tell that a refusal sent nothing.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &atomic.Int64{}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = &countingListener{Listener: ln, n: n}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, n
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestHTTPClientRefusesAtDialTime(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	byName := "http://" + net.JoinHostPort("localhost", strconv.Itoa(port))

	allowName, err := Parse([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	allowNameDenyAddr, err := Parse([]string{"localhost"}, []string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	allowAddr, err := Parse([]string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		rule    *Rule
		url     string
		refused bool
	}{
		{"loopback address, default rule", nil, srv.URL, true},
		{"name resolving to loopback, default rule", nil, byName, true},
		{"name resolving to loopback, address allowed but not the name", allowAddr, byName, false},
		{"allowed name", allowName, byName, false},
		{"allowed name resolving to a denied address", allowNameDenyAddr, byName, true},
		{"loopback address, name allowed only", allowName, srv.URL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := conns.Load()
			resp, err := tc.rule.HTTPClient(ClientOptions{}).Get(tc.url)
			if resp != nil {
				resp.Body.Close()
			}
			if tc.refused {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("err = %v, want ErrRefused", err)
				}
				if n := conns.Load() - before; n != 0 {
					t.Fatalf("the refused request opened %d connections", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHTTPClientRefusesRedirectToLoopback(t *testing.T) {
	target, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/metadata", http.StatusFound)
	}))
	t.Cleanup(first.Close)
	port := first.Listener.Addr().(*net.TCPAddr).Port

	// The first hop is allowed by its name; the redirect's 127.0.0.1 is not.
	r, err := Parse([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.HTTPClient(ClientOptions{}).Get("http://" + net.JoinHostPort("localhost", strconv.Itoa(port)) + "/")
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("redirect to loopback: err = %v, want ErrRefused", err)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the redirect reached the loopback target (%d connections)", n)
	}
}

func TestDialContextOnlyTCPAndUDP(t *testing.T) {
	dial := (*Rule)(nil).DialContext(&net.Dialer{})
	if _, err := dial(context.Background(), "unix", "/run/docker.sock"); !errors.Is(err, ErrRefused) {
		t.Fatalf("unix socket: err = %v, want ErrRefused", err)
	}
}
