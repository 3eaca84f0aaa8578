package engine

import (
	"strings"
	"testing"
)

// TestMemoryLimit: with a plan's memory limit, each server sizes its
// memory to fit (PostgreSQL's shared buffers a quarter, Redis refusing
// writes at three quarters, InnoDB's buffer pool a third) and runs in it.
func TestMemoryLimit(t *testing.T) {
	d := testDriver(t)
	for _, c := range []struct {
		typ  string
		show func(id string, a Addon) string
		want string
	}{
		{TypePostgreSQL, func(id string, a Addon) string {
			return execIn(t, d, id, pgEnv(a), "", "psql", "-X", "-A", "-t", "-c", "SHOW shared_buffers")
		}, "64MB"},
		{TypeRedis, func(id string, a Addon) string {
			// One parameter a call: CONFIG GET answers several in any order.
			get := func(p string) string {
				return strings.Join(strings.Fields(execIn(t, d, id, redisEnv(a), "", redisCLI(a, "CONFIG", "GET", p)...)), " ")
			}
			return get("maxmemory") + " " + get("maxmemory-policy")
		}, "maxmemory 201326592 maxmemory-policy noeviction"},
		{TypeMySQL, func(id string, a Addon) string {
			return execIn(t, d, id, mysqlEnv(a), "", mysqlTool(a, "mariadb", "-N", "-B", "-e", "SELECT @@innodb_buffer_pool_size DIV 1048576")...)
		}, "85"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			e, _ := Get(c.typ)
			a := testAddon(t, e, "process")
			a.Resources.MemoryMB = 256
			id := startAddon(t, d, e, a)
			if got := strings.TrimSpace(c.show(id, a)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
