package image

import "encoding/binary"

// virtualSize reads the disk size a format's header declares. It returns
// nil when the header does not match the declared format (Glance's
// inspector does the same), and size for raw images.
func virtualSize(diskFormat string, head []byte, size int64) *int64 {
	switch diskFormat {
	case "raw", "iso":
		if size == 0 {
			return nil // Glance reports no virtual size for an empty image
		}
		return &size
	case "qcow2":
		// "QFI\xfb", version, ..., size at byte 24 (big endian).
		if len(head) >= 32 && string(head[:4]) == "QFI\xfb" {
			v := int64(binary.BigEndian.Uint64(head[24:32]))
			return &v
		}
	case "vmdk":
		// Sparse extent header "KDMV": capacity in sectors at byte 12.
		if len(head) >= 20 && string(head[:4]) == "KDMV" {
			v := int64(binary.LittleEndian.Uint64(head[12:20])) * 512
			return &v
		}
	case "vhd":
		// Dynamic VHDs start with a footer copy "conectix"; current size
		// at byte 48 (big endian).
		if len(head) >= 56 && string(head[:8]) == "conectix" {
			v := int64(binary.BigEndian.Uint64(head[48:56]))
			return &v
		}
	case "vhdx":
		// The virtual size lives in the metadata region; not parsed.
		return nil
	}
	return nil
}
