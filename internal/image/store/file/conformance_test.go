package file_test

import (
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
)

func TestConformance(t *testing.T) {
	d, err := file.New(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		Leftovers: func(t *testing.T, key string) []string { return file.TempFiles(t, d.Dir()) },
	})
}
