//go:build unix

package check

import (
	"os"

	"golang.org/x/sys/unix"
)

// terminalWidth is the width of the terminal f is; ok is false when f is not a terminal.
func terminalWidth(f *os.File) (width int, ok bool) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, false
	}
	if ws.Col == 0 {
		return 80, true
	}
	return int(ws.Col), true
}
