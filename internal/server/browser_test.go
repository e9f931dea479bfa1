package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ashlar-dev/ashlar/internal/apitest"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium)
// driven by chromedp. Gated like the interop suite (ASHLAR_INTEROP=1;
// `make setup` installs chromium). ASHLAR_SCREENSHOTS=DIR saves a
// 1280×800 screenshot of each page there (docs/screenshots).

func browserContext(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("ASHLAR_INTEROP") == "" {
		t.Skip("ASHLAR_INTEROP is not set: the browser test needs chromium (make setup)")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: run make setup (scripts/setup.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first action starts the browser: no timeout on its context.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// shoot saves the page as DIR/name.png when ASHLAR_SCREENSHOTS is set.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ASHLAR_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func browserLogin(t *testing.T, ctx context.Context, base, user, password, project string) {
	t.Helper()
	err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.SendKeys(chromedp.ID("project"), project),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("header")))
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
}

// bounded limits one browser step: a selector that never matches fails
// the test instead of waiting for ever.
func bounded(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// text is the text of the first element sel matches ("" when none does
// within a few seconds).
func text(ctx context.Context, sel chromedp.CSS) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Text(sel))
	return s
}

func TestDashboardInBrowser(t *testing.T) {
	ctx := browserContext(t)
	e := startDashboard(t)
	// A volume to upload (1 GiB: the upload takes long enough to watch).
	volID, _ := apitest.Dig(e.volume.MustJSON(202, e.volume.Do(e.adminToken, "POST", "/volumes",
		`{"volume": {"size": 1, "name": "browser"}}`)), "volume", "id").(string)
	apitest.Eventually(t, 30*time.Second, func() bool {
		return apitest.Dig(e.volume.MustJSON(200, e.volume.Do(e.adminToken, "GET", "/volumes/"+volID, nil)), "volume", "status") == "available"
	}, func() string { return "volume not available" })
	e.volume.Must(200, e.volume.Do(e.adminToken, "POST", "/types",
		`{"volume_type": {"name": "on-cheap", "extra_specs": {"image_service:store_id": "cheap"}}}`))

	if err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/login"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, "login")
	browserLogin(t, ctx, e.url, "admin", adminPassword, "admin")

	t.Run("stores", func(t *testing.T) {
		if err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/stores"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-store="fast"]`))); err != nil {
			t.Fatal(err)
		}
		var fast string
		// the first health check lands within a second
		apitest.Eventually(t, 10*time.Second, func() bool {
			chromedp.Do(bounded(t, ctx), chromedp.Reload())
			fast = text(ctx, `tr[data-store="fast"]`)
			return strings.Contains(fast, "healthy")
		}, func() string { return "fast row: " + fast })
		cheap := text(ctx, `tr[data-store="cheap"]`)
		if !strings.Contains(fast, "default") || !strings.Contains(fast, "__DEFAULT__") || !strings.Contains(cheap, "on-cheap") {
			t.Errorf("stores: fast %q cheap %q", fast, cheap)
		}
		shoot(t, ctx, "stores")
	})

	t.Run("upload to image, progress bar to done", func(t *testing.T) {
		volRow := fmt.Sprintf(`tr[data-volume="%s"]`, volID)
		if err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/volumes"),
			chromedp.WaitVisible(chromedp.CSS(volRow))); err != nil {
			t.Fatal(err)
		}
		if note := text(ctx, chromedp.CSS(volRow+" .store")); !strings.Contains(note, "fast") {
			t.Errorf("the upload's store is not shown before the click: %q", note)
		}
		shoot(t, ctx, "volumes")
		err := chromedp.Do(bounded(t, ctx),
			chromedp.SetValue(chromedp.CSS(volRow+` input[name="image_name"]`), "from-browser"),
			chromedp.Click(chromedp.CSS(volRow+" button")),
			chromedp.WaitVisible(chromedp.ID("flash")))
		if err != nil {
			t.Fatal(err)
		}
		// Watch the upload's bar: it moves, then the row ends up done.
		// The page reloads itself when the upload ends.
		row := fmt.Sprintf(`tr[data-kind="volume.upload"][data-subject="%s"]`, volID)
		var seen []string
		shot := false
		apitest.Eventually(t, 90*time.Second, func() bool {
			state := strings.TrimSpace(text(ctx, chromedp.CSS(row+" .state")))
			vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			v, _ := chromedp.Run(vctx, chromedp.Evaluate[string](
				`(function(){var p=document.querySelector('`+row+` progress');return p?String(p.hasAttribute('value')?p.value:''):''})()`))
			seen = append(seen, state+":"+v)
			if !shot && strings.HasPrefix(state, "running") && v != "" && v != "0" {
				shoot(t, ctx, "transfers")
				shot = true
			}
			return strings.HasPrefix(state, "done") && v == "100"
		}, func() string { return fmt.Sprintf("progress seen: %v", seen) })
		moved := false
		for _, s := range seen {
			if v := s[strings.Index(s, ":")+1:]; strings.HasPrefix(s, "running") && v != "" && v != "0" && v != "100" {
				moved = true
			}
		}
		if !moved {
			t.Errorf("the bar never showed a running upload part way: %v", seen)
		}
		if !shot {
			shoot(t, ctx, "transfers")
		}
	})

	t.Run("images", func(t *testing.T) {
		if err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/images"), chromedp.WaitVisible(chromedp.ID("images"))); err != nil {
			t.Fatal(err)
		}
		if s := text(ctx, "#images"); !strings.Contains(s, "from-browser") || !strings.Contains(s, "fast") {
			t.Errorf("images: %q", s)
		}
		shoot(t, ctx, "images")
	})

	t.Run("a drifted type is flagged", func(t *testing.T) {
		dir := e.cfg.Stores[1].Options["filesystem_store_datadir"]
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		var row string
		apitest.Eventually(t, 15*time.Second, func() bool {
			chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/types"), chromedp.WaitVisible(chromedp.ID("types")))
			row = text(ctx, `tr[data-type="on-cheap"]`)
			return strings.Contains(row, "store unhealthy")
		}, func() string { return "on-cheap row: " + row })
		shoot(t, ctx, "types")
	})

	t.Run("a member is refused an admin page", func(t *testing.T) {
		err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/transfers"),
			chromedp.WaitVisible(chromedp.CSS("header form button")), chromedp.Click(chromedp.CSS("header form button")),
			chromedp.WaitVisible(chromedp.ID("login")))
		if err != nil {
			t.Fatal(err)
		}
		browserLogin(t, ctx, e.url, e.memberUser, e.memberPw, "dash-project")
		if err := chromedp.Do(bounded(t, ctx), chromedp.Navigate(e.url+"/stores"), chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
			t.Fatal(err)
		}
		if s := text(ctx, "#error"); !strings.Contains(s, "administrators") {
			t.Errorf("member on /stores: %q", s)
		}
		if nav := text(ctx, "header"); strings.Contains(nav, "Stores") {
			t.Errorf("a member's menu offers the stores page: %q", nav)
		}
		shoot(t, ctx, "member-refused")
	})
}
