//go:build !unix

package db

import "io"

// lockFile is a no-op where flock does not exist.
func lockFile(string) (io.Closer, error) { return io.NopCloser(nil), nil }
