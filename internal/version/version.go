// Package version holds the build version of the ashlar binary.
package version

// Version is set at build time with -ldflags "-X .../internal/version.Version=...".
var Version = "0.1.0-dev"
