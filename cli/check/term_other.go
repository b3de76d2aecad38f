//go:build !unix

package check

import "os"

// terminalWidth: elsewhere the waiting line is printed once per change, as into a file.
func terminalWidth(*os.File) (int, bool) { return 0, false }
