package upload

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/imageformat/qcow2"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// DiskFormats are the disk formats os-volume_upload_image accepts, in the
// order of Cinder's request schema (api/schemas/volume_actions.py), which
// its validation message lists.
var DiskFormats = []string{"raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"}

// ContainerFormats are the container formats accepted; "compressed" gzips
// the disk image, as Cinder does.
var ContainerFormats = []string{"bare", "compressed"}

// qemuFormats maps a Glance disk format to qemu-img's name for it, for the
// formats produced by qemu-img.
var qemuFormats = map[string]string{
	"vmdk":  "vmdk",
	"vdi":   "vdi",
	"vhd":   "vpc",
	"vhdx":  "vhdx",
	"ploop": "parallels",
}

// QCOW2 returns the volume as a qcow2 v3 image and the image's exact size.
// Only clusters that overlap the volume's extents are stored, so a mostly
// empty volume converts in about the time it takes to read its data.
func QCOW2(ctx context.Context, vol driver.Volume) (io.Reader, int64, error) {
	ext, err := vol.Extents(ctx)
	if err != nil {
		return nil, 0, err
	}
	ranges := make([]qcow2.Range, len(ext))
	for i, e := range ext {
		ranges[i] = qcow2.Range{Offset: e.Offset, Length: e.Length}
	}
	r, err := qcow2.NewReader(ctx, vol, vol.Size(), ranges)
	if err != nil {
		return nil, 0, fmt.Errorf("qcow2 layout: %w", err)
	}
	return r, r.Size(), nil
}

// Convert produces diskFormat (vmdk, vdi, vhd, vhdx or ploop) with
// `qemu-img convert` into a temporary file under tmpDir ("" for the system
// default). The file is removed when the returned reader is closed. A
// volume that is not a local file is first copied, sparsely, to a
// temporary raw file.
func Convert(ctx context.Context, vol driver.Volume, diskFormat, tmpDir string) (io.ReadCloser, int64, error) {
	qf, ok := qemuFormats[diskFormat]
	if !ok {
		return nil, 0, errs.E(errs.Invalid, "disk format %s is not produced by qemu-img", diskFormat)
	}
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, 0, errs.Wrap(errs.Unavailable, err, "qemu-img is not installed: cannot convert to "+diskFormat)
	}
	dir, err := os.MkdirTemp(tmpDir, "ashlar-upload-")
	if err != nil {
		return nil, 0, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	src := ""
	if lf, ok := vol.(driver.LocalFile); ok {
		src = lf.Path()
	} else {
		src = filepath.Join(dir, "volume.raw")
		if err := copySparse(ctx, vol, src); err != nil {
			cleanup()
			return nil, 0, err
		}
	}
	dst := filepath.Join(dir, "image."+diskFormat)
	cmd := exec.CommandContext(ctx, qemu, "convert", "-f", "raw", "-O", qf, src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("qemu-img convert to %s: %w: %s", qf, err, strings.TrimSpace(string(out)))
	}
	f, err := os.Open(dst)
	if err != nil {
		cleanup()
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		cleanup()
		return nil, 0, err
	}
	return &tempFile{File: f, cleanup: cleanup}, st.Size(), nil
}

// copySparse writes the volume's extents into a new sparse file.
func copySparse(ctx context.Context, vol driver.Volume, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(vol.Size()); err != nil {
		return err
	}
	ext, err := vol.Extents(ctx)
	if err != nil {
		return err
	}
	for _, e := range ext {
		if _, err := io.Copy(&offsetWriter{f: f, off: e.Offset}, io.NewSectionReader(vol, e.Offset, e.Length)); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return f.Sync()
}

type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// tempFile removes its directory on Close.
type tempFile struct {
	*os.File
	cleanup func()
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	t.cleanup()
	return err
}

// mostlyData reports whether at least half of vol lies in its extents.
func mostlyData(ctx context.Context, vol driver.Volume) bool {
	ext, err := vol.Extents(ctx)
	if err != nil {
		return false
	}
	var n int64
	for _, e := range ext {
		n += e.Length
	}
	return n >= vol.Size()/2
}

// Image returns the image data of vol in diskFormat, wrapped per
// containerFormat, and its size (-1 when only known at the end, as for
// compressed images). The caller must Close the reader.
func Image(ctx context.Context, vol driver.Volume, diskFormat, containerFormat, tmpDir string) (io.ReadCloser, int64, error) {
	var (
		r    io.Reader
		rc   io.ReadCloser
		size int64
		err  error
	)
	switch diskFormat {
	case "raw":
		r, size = Raw(ctx, vol), vol.Size()
		// A local file goes to the socket as is: the HTTP client then
		// uses sendfile and the bytes never enter user space. Holes read
		// as zeros from the file too.
		// Holes are cheaper as zeros made in memory than as zero pages
		// the kernel has to fill, so only mostly-allocated files take it.
		if lf, ok := vol.(driver.LocalFile); ok && mostlyData(ctx, vol) {
			if f, ferr := os.Open(lf.Path()); ferr == nil {
				r, rc = f, f
			}
		}
	case "qcow2":
		r, size, err = QCOW2(ctx, vol)
	default:
		if _, ok := qemuFormats[diskFormat]; !ok {
			return nil, 0, errs.E(errs.Invalid, "Invalid disk-format '%s' specified. Allowed disk-formats are %s.",
				diskFormat, strings.Join(DiskFormats, ", "))
		}
		rc, size, err = Convert(ctx, vol, diskFormat, tmpDir)
		r = rc
	}
	if err != nil {
		return nil, 0, err
	}
	if rc == nil {
		rc = io.NopCloser(r)
	}
	switch containerFormat {
	case "", "bare":
		return rc, size, nil
	case "compressed":
		return gzipped(rc), -1, nil
	}
	rc.Close()
	return nil, 0, errs.E(errs.Invalid, "Invalid container-format '%s' specified. Allowed container-formats are %s.",
		containerFormat, strings.Join(ContainerFormats, ", "))
}

// gzipped compresses src on the fly.
func gzipped(src io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		_, err := io.Copy(zw, src)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	return &pipeCloser{PipeReader: pr, src: src}
}

type pipeCloser struct {
	*io.PipeReader
	src io.Closer
}

func (p *pipeCloser) Close() error {
	p.PipeReader.CloseWithError(errors.New("upload: reader closed"))
	return p.src.Close()
}
