//go:build !(linux && (amd64 || arm64))

package file

import "os"

// startWriteback is a no-op where sync_file_range(2) is not available (or
// takes its arguments differently); the final fsync does all the work.
func startWriteback(f *os.File, off, n int64) {}
