package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// TestExternalRealKeystone runs the external validator against a real
// Keystone when ASHLAR_TEST_KEYSTONE_URL (e.g. http://127.0.0.1:5000/v3)
// and ASHLAR_TEST_KEYSTONE_ADMIN_PASSWORD name one (the interop suite
// starts one; keystone-manage bootstrap's admin is used as both the
// service user and the caller).
func TestExternalRealKeystone(t *testing.T) {
	url, pw := os.Getenv("ASHLAR_TEST_KEYSTONE_URL"), os.Getenv("ASHLAR_TEST_KEYSTONE_ADMIN_PASSWORD")
	if url == "" || pw == "" {
		t.Skip("ASHLAR_TEST_KEYSTONE_URL / ASHLAR_TEST_KEYSTONE_ADMIN_PASSWORD not set: no real Keystone to test against")
	}
	b, _ := json.Marshal(passwordAuth("admin", pw, "admin"))
	res, err := http.Post(url+"/auth/tokens", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	tok := res.Header.Get("X-Subject-Token")
	if res.StatusCode != 201 || tok == "" {
		t.Fatalf("keystone auth: %d", res.StatusCode)
	}
	cfg := externalConfig(url, time.Minute)
	cfg.Password = pw
	x := NewExternal(cfg, quietLogger(), nil)
	c, err := x.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserName != "admin" || c.ProjectName != "admin" || c.UserDomainID != "default" ||
		!slices.Contains(c.Roles, "admin") || !c.HasRole("reader") || c.EndpointURL("identity", "public") == "" {
		t.Errorf("caller = %+v", c)
	}
	if _, err := x.Validate(context.Background(), "gAAAAAbogus"); !errs.Is(err, errs.Unauthorized) {
		t.Errorf("bogus token: %v", err)
	}
}
