package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[identity]\ntoken_expiration = forever\n[image]\nenabled_backends = a:file, b:tape\ndefault_backend = a\n"), 0o600)
	stores := filepath.Join(dir, "stores.conf")
	os.WriteFile(stores, []byte(`[image]
enabled_backends = fast:file, cheap:s3, web:http
default_backend = fast
[store:fast]
filesystem_thin_provisioning = sometimes
[store:cheap]
s3_store_host = http://127.0.0.1:9000
s3_store_bucket = images
s3_store_access_key = ak
s3_store_thread_pools = 0
[store:web]
http_store_base_url = ftp://web.example.com/
frobnicate = 1
`), 0o600)
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("[DEFAULT]\nstate_path = "+dir+"\n"), 0o600)

	tests := []struct {
		name     string
		args     []string
		code     int
		mentions []string
	}{
		{"bad value and unknown type", []string{"config", "check", bad}, 1,
			[]string{"[identity] token_expiration", `unknown type "tape"`}},
		{"every store problem at once", []string{"config", "check", stores}, 1,
			[]string{"[store:fast] filesystem_thin_provisioning:", "[store:cheap] s3_store_secret_key: required",
				"[store:cheap] s3_store_thread_pools:", "[store:web] http_store_base_url:",
				"warning: [store:web] frobnicate: unknown option"}},
		{"good", []string{"config", "check", good}, 0, []string{"[store:fast]", "filesystem_store_datadir = " + filepath.Join(dir, "images", "fast"), "state_path = " + dir}},
		{"missing file", []string{"config", "check", filepath.Join(dir, "nope")}, 1, []string{"nope"}},
		{"usage", []string{"config"}, 2, []string{"config check FILE"}},
		{"unknown command", []string{"frob"}, 2, []string{"unknown command"}},
		{"version", []string{"version"}, 0, []string{"ashlar "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, all)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(all, m) {
					t.Errorf("output does not mention %q:\n%s", m, all)
				}
			}
		})
	}
}

func TestDBMigrateAndStatus(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run([]string{"db", "migrate", "--state-path", dir}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: %d %s", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"db", "status", "--state-path", dir}, &out, &errOut); code != 0 {
		t.Fatalf("status: %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "applied") || strings.Contains(out.String(), "pending") {
		t.Errorf("status after migrate:\n%s", out.String())
	}
}

func TestBootstrapCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASHLAR_ADMIN_PASSWORD", "boot-secret")
	for i := 0; i < 2; i++ { // idempotent
		var out, errOut bytes.Buffer
		if code := run([]string{"bootstrap", "--state-path", dir}, &out, &errOut); code != 0 {
			t.Fatalf("bootstrap #%d: %d %s", i, code, errOut.String())
		}
		if !strings.Contains(out.String(), "clouds.yaml") {
			t.Errorf("output: %s", out.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "openrc"))
	if err != nil || !strings.Contains(string(b), "OS_PASSWORD='boot-secret'") {
		t.Errorf("openrc: %s %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "clouds.yaml")); err != nil {
		t.Error(err)
	}
}

// TestTokenCommand: `token rotate` adds a staged key to the database the
// nodes share, `token keys` lists it.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASHLAR_ADMIN_PASSWORD", "boot-secret")
	var out, errOut bytes.Buffer
	if code := run([]string{"token", "rotate", "--state-path", dir}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "no token key") {
		t.Fatalf("rotate before any node ran: %d %s", code, errOut.String())
	}
	if code := run([]string{"bootstrap", "--state-path", dir}, &out, &errOut); code != 0 {
		t.Fatalf("bootstrap: %d %s", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"token", "rotate", "--state-path", dir}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "signs from") {
		t.Fatalf("rotate: %d %s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"token", "keys", "--state-path", dir}, &out, &errOut); code != 0 {
		t.Fatalf("keys: %d %s", code, errOut.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[1], "initial") || !strings.Contains(lines[1], "signing") || !strings.Contains(lines[2], "staged") {
		t.Errorf("keys:\n%s", out.String())
	}
	if code := run([]string{"token"}, &out, &errOut); code != 2 {
		t.Errorf("token without a subcommand: %d", code)
	}
}
