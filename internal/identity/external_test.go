package identity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// The external validator is tested against the embedded identity, which
// speaks the same GET /v3/auth/tokens protocol as Keystone; the interop
// suite runs it against a real Keystone.
func externalConfig(authURL string, ttl time.Duration) config.Identity {
	return config.Identity{AuthURL: authURL, Username: "admin", Password: adminPW, ProjectName: "admin",
		UserDomainName: "Default", ProjectDomainName: "Default", CacheTTL: ttl}
}

func TestExternalValidator(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		tok, uid, pid := e.user("ext", "member")
		x := NewExternal(externalConfig(e.srv.URL+"/v3", time.Minute), quietLogger(), nil)

		c, err := x.Validate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(c.Roles)
		if c.UserID != uid || c.UserName != "ext" || c.UserDomainID != "default" || c.ProjectID != pid ||
			c.ProjectName != "ext" || c.ProjectDomainID != "default" || !slices.Equal(c.Roles, []string{"member", "reader"}) || c.Token != tok {
			t.Errorf("caller = %+v", c)
		}
		if got := c.EndpointURL("volumev3", "public"); got != "http://volume.test:8776/v3/"+pid {
			t.Errorf("volumev3 endpoint = %q", got)
		}
		if c.ExpiresAt.Before(time.Now().Add(50*time.Minute)) || c.ExpiresAt.After(time.Now().Add(61*time.Minute)) {
			t.Errorf("expires = %v", c.ExpiresAt)
		}

		// Cached: a second validation makes no request; a revocation is
		// seen only once the cache entry ages out, like keystonemiddleware.
		n := e.validations.Load()
		if _, err := x.Validate(ctx, tok); err != nil || e.validations.Load() != n {
			t.Fatalf("second validation: %v, %d requests", err, e.validations.Load()-n)
		}
		if r := e.Do(tok, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", tok); r.Code != 204 {
			t.Fatal(r.Code)
		}
		if _, err := x.Validate(ctx, tok); err != nil {
			t.Errorf("cached validation after revoke: %v", err)
		}
		x.now = func() time.Time { return time.Now().Add(time.Minute + time.Second) }
		if _, err := x.Validate(ctx, tok); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("after the cache TTL, a revoked token: %v", err)
		}
		x.now = time.Now

		for _, bad := range []string{"garbage", ""} {
			if _, err := x.Validate(ctx, bad); !errs.Is(err, errs.Unauthorized) {
				t.Errorf("Validate(%q) = %v", bad, err)
			}
		}

		// The cache never outlives the token.
		tok2, _, _ := e.user("ext2", "reader")
		long := NewExternal(externalConfig(e.srv.URL, 24*time.Hour), quietLogger(), nil) // no /v3: added
		c2, err := long.Validate(ctx, tok2)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range long.cache {
			if !v.until.Equal(c2.ExpiresAt) {
				t.Errorf("cached until %v, token expires %v", v.until, c2.ExpiresAt)
			}
		}

		// Our service token revoked behind our back: renewed once, then the
		// validation goes through.
		if r := e.Do(long.svcToken, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", long.svcToken); r.Code != 204 {
			t.Fatal(r.Code)
		}
		tok3, _, _ := e.user("ext3", "member")
		if _, err := long.Validate(ctx, tok3); err != nil {
			t.Errorf("after service token revocation: %v", err)
		}

		// Concurrent first validations of one token share one request.
		tok4, _, _ := e.user("ext4", "member")
		n = e.validations.Load()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := long.Validate(ctx, tok4); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := e.validations.Load() - n; got != 1 {
			t.Errorf("8 concurrent validations made %d requests", got)
		}

		// Wrong service credentials or a dead Keystone: 503, not 401.
		badCfg := externalConfig(e.srv.URL+"/v3", time.Minute)
		badCfg.Password = "wrong"
		if _, err := NewExternal(badCfg, quietLogger(), nil).Validate(ctx, tok3); !errs.Is(err, errs.Unavailable) {
			t.Errorf("bad service credentials: %v", err)
		}
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		if _, err := NewExternal(externalConfig(dead.URL, time.Minute), quietLogger(), nil).Validate(ctx, tok3); !errs.Is(err, errs.Unavailable) {
			t.Errorf("dead keystone: %v", err)
		}
	})
}
