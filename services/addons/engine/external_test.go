package engine

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// TestExternalAccess: the server's TCP port is published on the host's
// loopback (Status.Ports["db"]), where the operator's clients connect
// with the app's password (and not without it).
func TestExternalAccess(t *testing.T) {
	d := testDriver(t)
	addr := func(t *testing.T, id string) (string, string) {
		st, err := d.Status(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(st.Ports["db"])
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("published port %v: %v", st.Ports, err)
		}
		return host, port
	}

	t.Run("postgresql", func(t *testing.T) {
		e, _ := Get(TypePostgreSQL)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, "postgres://"+a.User+":"+a.Password+"@"+host+":"+port+"/"+a.DBName+"?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var user string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != a.User {
			t.Fatalf("current_user %q %v", user, err)
		}
		if c, err := pgx.Connect(ctx, "postgres://"+a.User+":wrong@"+host+":"+port+"/"+a.DBName+"?sslmode=disable"); err == nil {
			c.Close(ctx)
			t.Fatal("a wrong password was accepted")
		}
	})

	t.Run("redis", func(t *testing.T) {
		e, _ := Get(TypeRedis)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := goredis.NewClient(&goredis.Options{Addr: host + ":" + port, Password: a.Password})
		defer c.Close()
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		bad := goredis.NewClient(&goredis.Options{Addr: host + ":" + port, Password: "wrong"})
		defer bad.Close()
		if err := bad.Ping(ctx).Err(); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	})

	t.Run("mysql", func(t *testing.T) {
		e, _ := Get(TypeMySQL)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		host, port := addr(t, id)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", a.User, "-N", "-B", a.DBName, "-e", "SELECT CURRENT_USER()")
		cmd.Env = []string{"MYSQL_PWD=" + a.Password}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != a.User+"@%" {
			t.Fatalf("%v: %s", err, out)
		}
	})
}
