package interop

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cloud runs the real OpenStack command-line clients as one user.
type cloud struct {
	env []string
	dir string // working directory, and where cli.log is appended
}

// newCloud returns clients authenticating against authURL (Keystone v3)
// as user in project (domain Default).
func newCloud(dir, authURL, user, password, project string) *cloud {
	env := append(baseEnv(),
		"OS_AUTH_URL="+authURL,
		"OS_IDENTITY_API_VERSION=3",
		"OS_AUTH_TYPE=password",
		"OS_USERNAME="+user,
		"OS_PASSWORD="+password,
		"OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default",
		"OS_PROJECT_DOMAIN_NAME=Default",
		"OS_REGION_NAME=RegionOne",
		"OS_INTERFACE=public",
		"OS_IMAGE_API_VERSION=2",
		"OS_VOLUME_API_VERSION=3",
		// No client-side caches or config from the developer's home.
		"HOME="+dir,
	)
	return &cloud{env: env, dir: dir}
}

// run runs one client command and records it in cli.log.
func (c *cloud) run(t *testing.T, argv ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := argv
	if argv[0] == "glance" {
		// Standard input closed, as in a cron job: glanceclient reads image
		// data from any other stdin that is not a terminal. (openstack
		// fails on a closed stdin, so image records without data are
		// created with glance.)
		cmd = append([]string{"sh", "-c", `exec "$@" <&-`, "sh"}, argv...)
	}
	r := runCmd(ctx, c.env, c.dir, cmd...)
	if f, err := os.OpenFile(filepath.Join(c.dir, "cli.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "$ %s   # %s, err=%v\n%s", strings.Join(argv, " "), r.Took.Round(time.Millisecond), r.Err, r.Stdout)
		if r.Stderr != "" {
			fmt.Fprintf(f, "[stderr]\n%s", r.Stderr)
		}
		fmt.Fprintln(f)
		f.Close()
	}
	return r
}

// ok runs a command that must succeed and returns its stdout.
func (c *cloud) ok(t *testing.T, argv ...string) string {
	t.Helper()
	r := c.run(t, argv...)
	if r.Err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), r.Err, r.Stdout, lastLines(r.Stderr, 15))
	}
	return r.Stdout
}

// json runs a command that must succeed and decodes its -f json output.
func (c *cloud) json(t *testing.T, out any, argv ...string) {
	t.Helper()
	s := c.ok(t, argv...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("%s: output is not the expected JSON: %v\n%s", strings.Join(argv, " "), err, s)
	}
}

// refused runs a command that must fail with all of wants in its output
// (e.g. "HTTP 404" and the server's message).
func (c *cloud) refused(t *testing.T, wants []string, argv ...string) {
	t.Helper()
	r := c.run(t, argv...)
	if r.Err == nil {
		t.Fatalf("%s succeeded, want a failure with %q\nstdout:\n%s", strings.Join(argv, " "), wants, r.Stdout)
	}
	all := r.Stdout + r.Stderr
	for _, w := range wants {
		if !strings.Contains(all, w) {
			t.Errorf("%s: output lacks %q:\n%s", strings.Join(argv, " "), w, lastLines(all, 10))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// parseTable reads a glanceclient/cinderclient "Property | Value" table
// into a map. Wrapped cells (continuation rows with an empty first
// column) are joined with a space, which is what the wrapping removed.
func parseTable(out string) map[string]string {
	m := map[string]string{}
	last := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 2 {
			continue
		}
		k := strings.TrimSpace(cells[0])
		v := strings.TrimSpace(strings.Join(cells[1:], "|"))
		switch {
		case k == "Property" && v == "Value":
		case k == "" && last != "":
			// The wrapper drops the space it broke at, or breaks after a hyphen.
			if strings.HasSuffix(m[last], "-") {
				m[last] += v
			} else {
				m[last] += " " + v
			}
		default:
			m[k] = v
			last = k
		}
	}
	return m
}

// digests are the checksums Glance reports for some bytes.
type digests struct {
	size   int64
	md5    string
	sha512 string
}

func digestReader(r io.Reader) (digests, error) {
	m, s := md5.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(m, s), r)
	return digests{n, hex.EncodeToString(m.Sum(nil)), hex.EncodeToString(s.Sum(nil))}, err
}

func digestFile(t *testing.T, path string) digests {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := digestReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// imageField returns an image attribute from `openstack image show -f
// json`, which puts non-standard attributes (stores, os_hash_value, ...)
// either at the top level or under "properties" depending on the version.
func imageField(img map[string]any, key string) string {
	if v, ok := img[key]; ok && v != nil {
		return jsonString(v)
	}
	if p, ok := img["properties"].(map[string]any); ok {
		if v, ok := p[key]; ok && v != nil {
			return jsonString(v)
		}
	}
	return ""
}

// jsonString formats a decoded JSON value, integers without exponent.
func jsonString(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
}

// eventually polls f every interval until it returns true or timeout.
func eventually(t *testing.T, timeout, interval time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		done, state := f()
		if done {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last state: %s", what, timeout, last)
		}
		time.Sleep(interval)
	}
}
