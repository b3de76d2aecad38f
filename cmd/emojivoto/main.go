// Command emojivoto is the sample application: `emojivoto web|emoji|voting|vote-bot`. Settings come from flags,
// defaulting to the environment variables of the classic demo (WEB_PORT, GRPC_PORT, EMOJISVC_HOST,
// VOTINGSVC_HOST, WEB_HOST, REQUEST_RATE). The program is app.Main; `sinew __emojivoto` runs the same.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sinewmesh/sinew/examples/emojivoto/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := app.Main(ctx, "emojivoto", os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojivoto: %v\n", err)
		os.Exit(1)
	}
}
