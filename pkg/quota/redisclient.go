package quota

import (
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/component"
)

// RedisSetting is the Redis that replicas share for their limits: the
// gateway's hourly quotas, the OAuth2 server's request limits and sign-in
// lockouts. Each component that limits declares it; the process lists it
// once.
var RedisSetting = component.Setting{
	Flag: "redis-url", Env: "SLIPWAY_REDIS_URL",
	Help: "Redis shared by replicas: the gateway's hourly quotas, the OAuth2 server's request limits and sign-in lockouts (empty: in-process)",
	Check: func(v string) error {
		_, err := redis.ParseURL(v)
		return err
	},
}

// NewRedisClient returns a client of the Redis at rawURL (RedisSetting's
// value) made for limiters, which a Failover backs with in-process
// counting:
//   - it fails fast (one retry, one-second timeouts): while Redis is down
//     the fallback answers, so retries would only add latency to requests;
//   - it speaks RESP2 unless the URL asks otherwise (?protocol=3): a
//     limiter runs one script per request and needs none of RESP3's push
//     messages, whose check before every reply was 2 % of the read path's
//     CPU.
func NewRedisClient(rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 1, time.Second, time.Second, time.Second
	if u, err := url.Parse(rawURL); err == nil && !u.Query().Has("protocol") {
		opts.Protocol = 2
	}
	return redis.NewClient(opts), nil
}
