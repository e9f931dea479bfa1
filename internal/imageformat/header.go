package imageformat

import (
	"bytes"
	"encoding/binary"
)

// headers are the disk formats known by how their data starts: the
// prefixes of their header, and where the header declares the virtual
// size (nil: it is not read).
var headers = []struct {
	format   string
	prefixes []string
	size     func(head []byte) (int64, bool)
}{
	// "QFI\xfb", version, ..., size at byte 24 (big endian).
	{"qcow2", []string{"QFI\xfb"}, func(h []byte) (int64, bool) {
		if len(h) < 32 {
			return 0, false
		}
		return int64(binary.BigEndian.Uint64(h[24:32])), true
	}},
	// A sparse extent header "KDMV" has the capacity in sectors at byte
	// 12; a descriptor file has no binary size.
	{"vmdk", []string{"KDMV", "# Disk DescriptorFile"}, func(h []byte) (int64, bool) {
		if len(h) < 20 || !bytes.HasPrefix(h, []byte("KDMV")) {
			return 0, false
		}
		return int64(binary.LittleEndian.Uint64(h[12:20])) * 512, true
	}},
	// The virtual size lives in the metadata region; not read.
	{"vhdx", []string{"vhdxfile"}, nil},
	// Dynamic VHDs start with a footer copy "conectix"; current size at
	// byte 48 (big endian).
	{"vhd", []string{"conectix"}, func(h []byte) (int64, bool) {
		if len(h) < 56 {
			return 0, false
		}
		return int64(binary.BigEndian.Uint64(h[48:56])), true
	}},
	{"ploop", []string{"WithoutFreeSpace", "WithouFreSpacExt"}, nil},
	{"luks", []string{"LUKS\xba\xbe"}, nil},
}

// startsLike reports whether b starts with one of prefixes.
func startsLike(b []byte, prefixes []string) bool {
	for _, p := range prefixes {
		if bytes.HasPrefix(b, []byte(p)) {
			return true
		}
	}
	return false
}

// Detect names the format whose header starts b ("raw" when none does).
func Detect(b []byte) string {
	for _, h := range headers {
		if startsLike(b, h.prefixes) {
			return h.format
		}
	}
	if len(b) >= 68 && binary.LittleEndian.Uint32(b[64:]) == 0xbeda107f {
		return "vdi"
	}
	return "raw"
}

// VirtualSize is the disk size declared by head, the start of an image of
// format whose data is size bytes: size itself for raw and iso images. It
// is nil for an empty raw image (Glance reports no virtual size for one),
// when head is not a header of format (Glance's inspector does the same),
// and for formats whose size is not read.
func VirtualSize(format string, head []byte, size int64) *int64 {
	switch format {
	case "raw", "iso":
		if size == 0 {
			return nil
		}
		return &size
	}
	for _, h := range headers {
		if h.format != format || h.size == nil || !startsLike(head, h.prefixes) {
			continue
		}
		if v, ok := h.size(head); ok {
			return &v
		}
	}
	return nil
}
