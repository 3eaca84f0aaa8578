package rpcserver

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

type metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and status code.",
		}, []string{"grpc_service", "grpc_method", "grpc_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_grpc_server_handling_seconds",
			Help:    "Time to handle an RPC on the server.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"grpc_service", "grpc_method"}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(fullMethod string, code codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	m.handled.WithLabelValues(service, method, code.String()).Inc()
	m.duration.WithLabelValues(service, method).Observe(d.Seconds())
}
