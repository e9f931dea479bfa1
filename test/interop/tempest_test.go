package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tempestAccount is one entry of testdata/accounts.yaml.
type tempestAccount struct {
	account
	Admin bool
}

// readAccounts parses the flat YAML list of testdata/accounts.yaml (only
// the keys it uses: username, project_name, password, roles, types).
func readAccounts(t *testing.T) []tempestAccount {
	t.Helper()
	b, err := os.ReadFile("testdata/accounts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []tempestAccount
	kv := regexp.MustCompile(`^\s*-?\s*(\w+):\s*(.*)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		m := kv.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "-") {
			out = append(out, tempestAccount{account: account{Role: "member"}})
		}
		if len(out) == 0 {
			t.Fatalf("accounts.yaml: %q before the first entry", line)
		}
		a := &out[len(out)-1]
		v := strings.Trim(strings.TrimSpace(m[2]), `'"`)
		switch m[1] {
		case "username":
			a.User = v
		case "project_name":
			a.Project = v
		case "password":
			a.Password = v
		case "roles":
			a.Role = strings.Trim(v, `[]'" `)
		case "types":
			if strings.Contains(v, "admin") {
				a.Admin, a.Role = true, "admin"
			}
		}
	}
	return out
}

// writeAccounts writes the tempest accounts file with the suite's admin
// password for the bootstrap admin.
func writeAccounts(t *testing.T, path string, accts []tempestAccount) {
	t.Helper()
	var b strings.Builder
	for _, a := range accts {
		fmt.Fprintf(&b, "- username: '%s'\n  project_name: '%s'\n  password: '%s'\n  user_domain_name: 'Default'\n  project_domain_name: 'Default'\n",
			a.User, a.Project, a.Password)
		if a.Admin {
			b.WriteString("  types: ['admin']\n")
		} else {
			fmt.Fprintf(&b, "  roles: ['%s']\n", a.Role)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// renderTemplate replaces ${VAR} from vars and drops option lines whose
// value renders empty, so those options keep tempest's default.
func renderTemplate(t *testing.T, src string, vars map[string]string) string {
	t.Helper()
	var missing []string
	re := regexp.MustCompile(`\$\{(\w+)\}`)
	out := re.ReplaceAllStringFunc(src, func(m string) string {
		k := m[2 : len(m)-1]
		v, ok := vars[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("tempest.conf.tmpl: no value for %v", missing)
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		s := strings.TrimSpace(line)
		if s != "" && !strings.HasPrefix(s, "#") && !strings.HasPrefix(s, "[") && strings.Contains(s, "=") &&
			strings.TrimSpace(strings.SplitN(s, "=", 2)[1]) == "" {
			continue
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// tempestResult is one line of testdata/subunit2json.py.
type tempestResult struct {
	ID      string  `json:"id"`
	Status  string  `json:"status"`
	Reason  string  `json:"reason"`
	Seconds float64 `json:"seconds"`
}

// tempestLists are the include-lists in testdata, in run order. later
// enables the volume features the later list tests: snapshots, clones,
// backups and several backends (tempestBackends).
var tempestLists = []struct {
	name          string
	cinder, later bool
}{{"image-core", false, false}, {"volume-core", true, false}, {"volume-later", true, true}}

// tempestBackends are the volume backends of the tempest Ashlar: two, for
// the multi-backend and retype-with-migration tests.
var tempestBackends = []string{"b1", "b2"}

// TestTempest runs tempest (offline, pre-provisioned accounts) with the
// include-lists of testdata against an Ashlar with its embedded identity,
// one subtest per tempest test.
func TestTempest(t *testing.T) {
	requireInterop(t)
	requireTools(t, "tempest", "stestr", "python3")
	defer logTook(t, time.Now())
	a := startAshlar(t, "tempest", ashlarOpts{postgres: true, scan: true, backends: tempestBackends})
	runTempest(t, a)
	a.checkResponses(t)
}

// runTempest provisions tempest's accounts on a and runs the include-lists
// (those ASHLAR_TEMPEST_LISTS names, or all), one subtest per list and per
// tempest test.
func runTempest(t *testing.T, a *ashlar) {
	start := time.Now()
	ctx := context.Background()
	admin, ti, err := login(ctx, a.authURL(), "admin", adminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	accts := readAccounts(t)
	for _, acc := range accts {
		if acc.User == "admin" {
			continue // the bootstrap admin; changing its password would revoke our token
		}
		if err := admin.provision(ctx, ti.Token.User.Domain.ID, acc.account); err != nil {
			t.Fatalf("provisioning tempest account %s: %v", acc.User, err)
		}
	}
	for i := range accts {
		if accts[i].User == "admin" {
			accts[i].Password = adminPassword
		}
	}
	// The remote import tests need a second image endpoint in the catalog,
	// registered as an operator would (type image_remote, same image API).
	altImage := "image_remote"
	if ti.endpoint("image_remote") == "" {
		if err := admin.registerEndpoint(ctx, "image_remote", "glance-remote", a.imageURL); err != nil {
			t.Errorf("registering the image_remote catalog entry: %v; tempest skips the remote import tests", err)
			altImage = ""
		}
	}
	imageRef := tempestImage(t, admin.token, a.imageURL)
	protocol, vendor := backendCapabilities(t, admin.token, a.volumeURL+"/v3/"+ti.Token.Project.ID)
	t.Logf("tempest setup (ashlar, %d accounts, image_ref %s) took %s", len(accts), imageRef, time.Since(start).Round(time.Millisecond))

	want := map[string]bool{}
	for _, l := range strings.Split(os.Getenv("ASHLAR_TEMPEST_LISTS"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			want[l] = true
		}
	}
	for _, list := range tempestLists {
		t.Run(list.name, func(t *testing.T) {
			if len(want) > 0 && !want[list.name] {
				t.Skipf("not in ASHLAR_TEMPEST_LISTS=%s", os.Getenv("ASHLAR_TEMPEST_LISTS"))
			}
			if list.later && len(a.backends) < 2 {
				t.Skipf("the later list needs two volume backends; this Ashlar has %v", a.backends)
			}
			vars := map[string]string{
				"ADMIN_PW": adminPassword, "KEYSTONE_URL": a.identityURL,
				"CINDER_AVAILABLE": strconv.FormatBool(list.cinder), "HTTP_IMAGE": a.web.url + "/random.img",
				"IMAGE_CACHING": "false", "MANAGE_LOCATIONS": "false", "ALT_IMAGE_ENDPOINT": altImage,
				"VOLUME_BACKENDS": strings.Join(a.backends, ","), "STORAGE_PROTOCOL": protocol, "VENDOR_NAME": vendor,
				"VOLUME_MIN_MV": "3.0", "VOLUME_MAX_MV": "3.70", "IMAGE_REF": imageRef,
			}
			later := strconv.FormatBool(list.later)
			vars["VOLUME_MULTI_BACKEND"], vars["VOLUME_SNAPSHOT"], vars["VOLUME_CLONE"] = later, later, later
			vars["VOLUME_BACKUP"] = later
			runTempestList(t, list.name, vars, accts)
		})
	}
}

// tempestImage uploads the public 1 MiB raw image the volume tests create
// volumes from ([compute] image_ref) and returns its id.
func tempestImage(t *testing.T, token, imageURL string) string {
	t.Helper()
	code, body := rawRequest(t, token, "POST", imageURL+"/v2/images", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"name": "tempest-image-ref", "disk_format": "raw", "container_format": "bare", "visibility": "public"}`))
	var img struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &img) != nil || img.ID == "" {
		t.Fatalf("creating tempest image_ref: %d %.300s", code, body)
	}
	code, body = rawRequest(t, token, "PUT", imageURL+"/v2/images/"+img.ID+"/file",
		map[string]string{"Content-Type": "application/octet-stream"}, bytes.Repeat([]byte{0}, 1<<20))
	if code != http.StatusNoContent {
		t.Fatalf("uploading tempest image_ref: %d %.300s", code, body)
	}
	return img.ID
}

// runTempestList runs one include-list in a fresh tempest workspace and
// reports every tempest test as a subtest.
func runTempestList(t *testing.T, name string, vars map[string]string, accts []tempestAccount) {
	dir := logDir(t, "tempest-"+name)
	ws := filepath.Join(dir, "ws")
	home := filepath.Join(dir, "home") // tempest init records workspaces under $HOME/.tempest
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(), "HOME="+home)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if r := runCmd(ctx, env, dir, "tempest", "init", ws); r.Err != nil {
		t.Fatalf("tempest init: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	for _, d := range []string{"etc", "logs", "locks"} {
		os.MkdirAll(filepath.Join(ws, d), 0o755)
	}
	vars["WS"] = ws
	tmpl, err := os.ReadFile("testdata/tempest.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(ws, "etc", "tempest.conf")
	if err := os.WriteFile(conf, []byte(renderTemplate(t, string(tmpl), vars)), 0o644); err != nil {
		t.Fatal(err)
	}
	writeAccounts(t, filepath.Join(ws, "etc", "accounts.yaml"), accts)
	include := filepath.Join(ws, "etc", "include-list.txt")
	if err := writeIncludeList("testdata/"+name+".txt", include); err != nil {
		t.Fatal(err)
	}
	args := []string{"tempest", "run", "--config-file", conf, "--include-list", include}
	if c := os.Getenv("ASHLAR_TEMPEST_CONCURRENCY"); c != "" && c != "1" {
		args = append(args, "--concurrency", c)
	} else {
		args = append(args, "--serial")
	}
	start := time.Now()
	run := runCmd(ctx, env, ws, args...)
	took := time.Since(start)
	os.WriteFile(filepath.Join(dir, "tempest-run.console.txt"), []byte(run.Stdout+run.Stderr), 0o644)

	sub := runCmd(ctx, env, ws, "stestr", "last", "--subunit")
	subunitPath := filepath.Join(dir, "results.subunit")
	os.WriteFile(subunitPath, []byte(sub.Stdout), 0o644)
	results, err := parseSubunit(ctx, env, subunitPath)
	if err != nil {
		t.Fatalf("reading tempest results: %v (tempest run: %v)\n%s", err, run.Err, lastLines(run.Stdout+run.Stderr, 30))
	}
	if len(results) == 0 {
		t.Fatalf("tempest ran no test (exit %v); console:\n%s", run.Err, lastLines(run.Stdout+run.Stderr, 30))
	}
	counts := map[string]int{}
	var summary strings.Builder
	for _, r := range results {
		counts[r.Status]++
		fmt.Fprintf(&summary, "%-9s %7.1fs %s\n", r.Status, r.Seconds, r.ID)
	}
	os.WriteFile(filepath.Join(dir, "results.txt"), []byte(summary.String()), 0o644)
	passed := counts["success"] + counts["xfail"]
	failed := counts["fail"] + counts["uxsuccess"]
	t.Logf("tempest %s: passed=%d failed=%d skipped=%d total=%d in %s (results %s)",
		name, passed, failed, counts["skip"], len(results), took.Round(time.Second), filepath.Join(dir, "results.txt"))
	for _, r := range results {
		id := regexp.MustCompile(`\[.*\]$`).ReplaceAllString(r.ID, "")
		t.Run(id, func(t *testing.T) {
			switch r.Status {
			case "success", "xfail":
			case "skip":
				t.Skip(lastLines(strings.TrimSpace(r.Reason), 3))
			default:
				t.Errorf("tempest %s:\n%s", r.Status, lastLines(strings.TrimSpace(r.Reason), 25))
			}
		})
	}
	if run.Err != nil && failed == 0 {
		t.Errorf("tempest run exited with %v but reported no failed test; console:\n%s", run.Err, lastLines(run.Stdout+run.Stderr, 30))
	}
}

// writeIncludeList copies an include-list without comments and blank lines.
func writeIncludeList(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
	}
	return os.WriteFile(dst, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// parseSubunit converts a subunit v2 file with testdata/subunit2json.py.
func parseSubunit(ctx context.Context, env []string, path string) ([]tempestResult, error) {
	script, err := filepath.Abs("testdata/subunit2json.py")
	if err != nil {
		return nil, err
	}
	r := runCmd(ctx, env, "", "sh", "-c", `exec "$0" "$1" < "$2"`, tempestPython(), script, path)
	if r.Err != nil {
		return nil, fmt.Errorf("%v: %s", r.Err, r.Stderr)
	}
	var out []tempestResult
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var tr tempestResult
		if err := json.Unmarshal([]byte(line), &tr); err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		out = append(out, tr)
	}
	slices.SortFunc(out, func(a, b tempestResult) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// tempestPython is the interpreter tempest runs on (the Debian one, which
// has python3-subunit), read from the tempest script's #! line.
func tempestPython() string {
	if p, err := exec.LookPath("tempest"); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if py, ok := strings.CutPrefix(first, "#!"); ok && !strings.Contains(py, " ") {
				return strings.TrimSpace(py)
			}
		}
	}
	return "/usr/bin/python3"
}

// backendCapabilities reads the storage_protocol and vendor_name the volume
// backend reports (GET scheduler-stats/get_pools), which tempest's volume
// type tests put in extra specs the scheduler must match, as an operator
// would configure them from the deployment.
func backendCapabilities(t *testing.T, token, volumeURL string) (protocol, vendor string) {
	t.Helper()
	code, body := rawRequest(t, token, "GET", strings.TrimRight(volumeURL, "/")+"/scheduler-stats/get_pools?detail=true", nil, nil)
	var pools struct {
		Pools []struct {
			Capabilities map[string]any `json:"capabilities"`
		} `json:"pools"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &pools) != nil || len(pools.Pools) == 0 {
		// What internal/volume/driver/file reports.
		t.Logf("get_pools: %d %.200s; tempest gets the file driver's storage_protocol file, vendor_name Ashlar", code, body)
		return "file", "Ashlar"
	}
	c := pools.Pools[0].Capabilities
	protocol, vendor = fmt.Sprint(c["storage_protocol"]), fmt.Sprint(c["vendor_name"])
	t.Logf("volume backend reports storage_protocol %q, vendor_name %q", protocol, vendor)
	return protocol, vendor
}
