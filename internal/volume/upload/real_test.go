package upload

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/glanceclient"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// TestRealGlanceUpload uploads a volume as raw and as qcow2 into store
// cheap of a real Glance (testenv.RealGlance; see glanceclient's
// TestRealGlance) and checks what Glance recorded and serves back.
func TestRealGlanceUpload(t *testing.T) {
	u, tok := testenv.RealGlance(t)
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	c, err := glanceclient.New(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v := newVolume(t, 64*mib, 3, [2]int64{0, mib}, [2]int64{40 * mib, 41*mib + 7})
	for _, f := range []string{"raw", "qcow2"} {
		t.Run(f, func(t *testing.T) {
			img, err := c.CreateImage(ctx, tok, map[string]any{"name": "ashlar-upload-" + f, "disk_format": f, "container_format": "bare"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.DeleteImage(ctx, tok, img.ID)
			if err := Upload(ctx, c, tok, img.ID, "cheap", v, f); err != nil {
				t.Fatal(err)
			}
			got, err := c.GetImage(ctx, tok, img.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Glance's format inspector reads the virtual size from the qcow2 header.
			if got.Status != "active" || got.Stores != "cheap" || got.VirtualSize != v.Size() {
				t.Fatalf("image %+v", got)
			}
			rc, err := c.Download(ctx, tok, img.ID)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "img")
			out, _ := os.Create(p)
			_, err = io.Copy(out, rc)
			rc.Close()
			out.Close()
			if err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(qemu, "compare", "-f", "raw", "-F", f, v.path, p).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img compare: %v\n%s", err, b)
			}
		})
	}
}
