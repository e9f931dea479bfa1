// Package imageformat knows disk image formats: what a header declares
// (Detect, VirtualSize), and turning image data into a volume's raw bytes
// (create a volume from an image) with the checks Cinder makes on
// untrusted images; package qcow2 writes qcow2 images.
package imageformat

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// VMDKAllowedTypes are the VMDK create-types accepted (Cinder's default
// vmdk_allowed_types): those that do not reference other files.
var VMDKAllowedTypes = []string{"streamOptimized", "monolithicSparse"}

// qemuName maps a Glance disk format to qemu-img's format name.
var qemuName = map[string]string{"qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
	"vhdx": "vhdx", "ploop": "parallels"}

// rawFormats are streamed to the volume as they are.
var rawFormats = []string{"raw", "iso", "ami", "aki", "ari", ""}

// Source is image data to be written to a volume.
type Source struct {
	ImageID         string
	DiskFormat      string
	ContainerFormat string // "bare" (or "") or "compressed" (gzip)
	Data            io.Reader
	// TempDir holds the image and its raw conversion for non-raw formats;
	// "" is the system default.
	TempDir string
}

// Raw is a volume's worth of raw bytes made from an image.
type Raw struct {
	io.Reader
	// VirtualSize is the disk size the image describes, or -1 for raw
	// images, whose size is their length.
	VirtualSize int64
	closeFn     func() error
}

// Close releases temporary files.
func (r *Raw) Close() error {
	if r.closeFn != nil {
		return r.closeFn()
	}
	return nil
}

func unacceptable(id, format string, args ...any) error {
	return errs.E(errs.Invalid, "Image %s is unacceptable: %s", id, fmt.Sprintf(format, args...))
}

// ToRaw returns the raw disk bytes of the image. Raw images are streamed
// (after checking that the data does not carry another format's header);
// the other formats are written to a temporary file, checked with
// `qemu-img info` (declared format matches, no backing file, no qcow2
// data-file, allowed VMDK create-type) and converted with `qemu-img
// convert` into a sparse temporary raw file. Problems with the image are
// errs.Invalid "Image <id> is unacceptable: <reason>", as in Cinder.
func ToRaw(ctx context.Context, src Source) (*Raw, error) {
	data := src.Data
	var closers []func() error
	switch src.ContainerFormat {
	case "", "bare", "ovf", "ova", "docker", "aki", "ari", "ami":
	case "compressed":
		zr, err := gzip.NewReader(data)
		if err != nil {
			return nil, unacceptable(src.ImageID, "Unsupported compressed image format found. Only gzip is supported currently")
		}
		data = zr
		closers = append(closers, zr.Close)
	default:
		return nil, unacceptable(src.ImageID, "container format %s is not supported", src.ContainerFormat)
	}
	if slices.Contains(rawFormats, src.DiskFormat) {
		br := bufio.NewReaderSize(data, 1<<20)
		head, _ := br.Peek(1 << 16)
		if f := Detect(head); f != "raw" && src.DiskFormat != "iso" {
			return nil, unacceptable(src.ImageID, "The image format was claimed to be '%s' but the image data appears to be in a different format.", orRaw(src.DiskFormat))
		}
		return &Raw{Reader: br, VirtualSize: -1, closeFn: closeAll(closers)}, nil
	}
	qf, ok := qemuName[src.DiskFormat]
	if !ok {
		return nil, unacceptable(src.ImageID, "disk format %s is not supported", src.DiskFormat)
	}
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, unacceptable(src.ImageID, "qemu-img is not installed and image is of type %s.  Only RAW images can be used if qemu-img is not installed.", src.DiskFormat)
	}
	dir, err := os.MkdirTemp(src.TempDir, "ashlar-image-")
	if err != nil {
		return nil, err
	}
	ok = false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	in := filepath.Join(dir, "image."+src.DiskFormat)
	if err := writeFile(ctx, in, data); err != nil {
		return nil, err
	}
	info, err := qemuInfo(ctx, qemu, in)
	if err != nil {
		return nil, unacceptable(src.ImageID, "'qemu-img info' parsing failed.")
	}
	if info.Format != qf {
		return nil, unacceptable(src.ImageID, "The image format was claimed to be '%s' but the image data appears to be in a different format.", src.DiskFormat)
	}
	if info.BackingFile != "" {
		return nil, unacceptable(src.ImageID, "fmt=%s backed by:%s", info.Format, info.BackingFile)
	}
	switch info.Format {
	case "qcow2":
		if info.Specific.Data.DataFile != "" {
			return nil, unacceptable(src.ImageID, "A qcow2 format image is not allowed to have a data file")
		}
	case "vmdk":
		if !slices.Contains(VMDKAllowedTypes, info.Specific.Data.CreateType) {
			return nil, unacceptable(src.ImageID, "Invalid VMDK create-type specified")
		}
	}
	out := filepath.Join(dir, "volume.raw")
	cmd := exec.CommandContext(ctx, qemu, "convert", "-f", qf, "-O", "raw", in, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unacceptable(src.ImageID, "conversion to raw failed: %s", strings.TrimSpace(string(b)))
	}
	os.Remove(in)
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	ok = true
	closers = append(closers, f.Close, func() error { return os.RemoveAll(dir) })
	return &Raw{Reader: f, VirtualSize: info.VirtualSize, closeFn: closeAll(closers)}, nil
}

func orRaw(f string) string {
	if f == "" {
		return "raw"
	}
	return f
}

func closeAll(fs []func() error) func() error {
	return func() error {
		var first error
		for _, f := range fs {
			if err := f(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
}

// writeFile stores r at path, leaving zero blocks as holes.
func writeFile(ctx context.Context, path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return f.Truncate(off)
		}
		if rerr != nil {
			return rerr
		}
	}
}

type qemuImgInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	BackingFile string `json:"backing-filename"`
	Specific    struct {
		Type string `json:"type"`
		Data struct {
			DataFile   string `json:"data-file"`
			CreateType string `json:"create-type"`
		} `json:"data"`
	} `json:"format-specific"`
}

// qemuInfo probes the file's format (no -f: the data decides, as in
// Cinder) with a memory and time bound against hostile images.
func qemuInfo(ctx context.Context, qemu, path string) (*qemuImgInfo, error) {
	cmd := exec.CommandContext(ctx, "prlimit", "--as=1073741824", "--cpu=30", qemu, "info", "--output=json", path)
	if _, err := exec.LookPath("prlimit"); err != nil {
		cmd = exec.CommandContext(ctx, qemu, "info", "--output=json", path)
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var info qemuImgInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
