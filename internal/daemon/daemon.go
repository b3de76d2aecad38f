// Package daemon holds what sinew's long-running Kubernetes programs (sinew-controller's services, sinew-viz)
// share: the --log-level/--log-format flags and the API-server client configuration.
package daemon

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sinewmesh/sinew/internal/version"
)

// LogFlags are --log-level and --log-format.
type LogFlags struct{ Level, Format string }

// Register adds the flags to f.
func (l *LogFlags) Register(f *pflag.FlagSet) {
	f.StringVar(&l.Level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&l.Format, "log-format", "text", "text or json")
}

// Logger is the logger the flags ask for, writing to w.
func (l *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.Format)
}

// RESTConfig is a program's API-server configuration: from kubeconfig, or the pod's in-cluster configuration when
// it is empty, with the user agent <program>/<version>.
func RESTConfig(kubeconfig, program string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = program + "/" + version.Version
	return cfg, nil
}
