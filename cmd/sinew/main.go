// Command sinew is the sinew CLI. Everything lives in package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sinewmesh/sinew/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.NewEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
