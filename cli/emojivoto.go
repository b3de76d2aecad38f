package cli

import (
	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/examples/emojivoto/app"
)

// emojivotoCmd is the hidden command that runs the sample application inside sinew itself.
const emojivotoCmd = "__emojivoto"

// newEmojivotoCmd is `sinew __emojivoto web|emoji|voting|vote-bot [flags]`, the emojivoto program (app.Main) inside
// the CLI, so that `sinew demo` works where only sinew is installed (go install …/cmd/sinew). Hidden: the demo runs
// it, people run `sinew demo`.
func newEmojivotoCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:                emojivotoCmd + " web|emoji|voting|vote-bot [flags]",
		Short:              "Run a part of the emojivoto sample application (what sinew demo runs)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Main(cmd.Context(), "sinew "+emojivotoCmd, args, env.Stderr)
		},
	}
}
