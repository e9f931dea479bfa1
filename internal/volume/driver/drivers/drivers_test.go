package drivers

import (
	"context"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

func TestNew(t *testing.T) {
	d, err := New(config.Backend{Name: "local", VolumeDriver: "file", Options: map[string]string{"volumes_dir": t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Capabilities(context.Background()); err != nil || c.VolumeBackendName != "local" {
		t.Fatalf("Capabilities = %+v, %v", c, err)
	}
	// Every driver the config accepts is registered.
	for name := range config.VolumeDrivers {
		if _, ok := Factories()[name]; !ok {
			t.Errorf("config accepts volume_driver %q but no factory exists", name)
		}
	}
	if _, err := New(config.Backend{Name: "x", VolumeDriver: "lvm"}); !errs.Is(err, errs.Invalid) {
		t.Fatalf("unknown driver: %v", err)
	}
}
