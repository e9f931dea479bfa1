package s3

// PartSizeFor exposes the part-size schedule to tests.
func PartSizeFor(d *Driver, n int32) int64 { return d.partSizeFor(n) }
