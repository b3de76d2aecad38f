// Package version holds the build's version, which is also the tag of the images the CLI installs by default.
// Release builds set it with -ldflags "-X github.com/sinewmesh/sinew/internal/version.Version=<v>"; the Makefile
// does so for binaries and images alike, so a CLI and the images built with it always agree.
package version

// Version is this build's version.
var Version = "0.1.0-dev"
