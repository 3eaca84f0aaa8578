package ingress_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
)

// BenchmarkIngress measures what the ingress adds to a small GET: each
// iteration sends one request straight to the instance and one through
// the ingress, over kept-alive loopback connections, and the benchmark
// reports both medians and their ratio (p50-ratio: proxied / direct). It
// is bounded by -benchtime like any benchmark; a bounded run is
//
//	go test -run '^$' -bench BenchmarkIngress -benchtime 2000x ./pkg/ingress/
func BenchmarkIngress(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	in, base := newIngress(b, ingress.Config{})
	mustSet(b, in, route("demo", "web", "p01", ingress.Backend{ID: "web", Addr: srv.Listener.Addr().String()}))

	get := func(url, host string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return d
	}
	direct := make([]time.Duration, 0, b.N)
	proxied := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		direct = append(direct, get(srv.URL, srv.Listener.Addr().String()))
		proxied = append(proxied, get(base, "p01--web--demo.localhost"))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	pd, pp := p50(direct), p50(proxied)
	b.ReportMetric(float64(pd.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(pp.Microseconds()), "proxied-p50-µs")
	b.ReportMetric(float64(pp)/float64(pd), "p50-ratio")
}
