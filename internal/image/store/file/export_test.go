package file

import "testing"

// TempFiles lets the external conformance test see upload temp files.
func TempFiles(t *testing.T, dir string) []string { return tempFiles(t, dir) }

// SetBuffered keeps O_DIRECT off, as on a filesystem without it.
func (d *Driver) SetBuffered(on bool) { d.buffered = on }
