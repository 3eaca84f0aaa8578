// Command slipway runs Slipway: every component in one process by default
// (`slipway serve`), or one component per process (`--target=projects`,
// `--target=gateway`, ...), and migrates its databases (`slipway migrate`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Slipway, a self-hosted PaaS control plane.

Usage:
  slipway serve   [flags]   run Slipway (all components by default)
  slipway migrate [flags]   apply database migrations and exit
  slipway admin <command>   create users, teams, members and tokens in the auth database
  slipway components        list the components --target can run, and their settings
  slipway version           print the version

Run "slipway serve -h" for the flags; each has a SLIPWAY_* environment variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "slipway:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig("serve", args)
		if err != nil {
			return err
		}
		return serve(ctx, cfg)
	case "migrate":
		cfg, err := parseConfig("migrate", args)
		if err != nil {
			return err
		}
		return migrate(ctx, cfg)
	case "admin":
		return admin(ctx, args)
	case "components":
		return components(args, os.Stdout)
	case "version":
		fmt.Println(version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
