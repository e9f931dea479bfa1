package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// attachEnv is one Ashlar and what the attach tests share: the admin's
// token, the volume API base, the consumer's connector, and the pattern
// the consumer writes with what an image of a 1 GiB volume holding it
// must hash to.
type attachEnv struct {
	a         *ashlar
	token     string
	base      string // volume API: .../v3/<project>
	python    string // a python3 that imports os_brick
	helper    string // testdata/brick_attach.py
	connector map[string]any
	pattern   string // file of 1 MiB of random bytes
	want      digests
	admin     *cloud
	dir       string
}

// brickPython returns a python3 that can import os_brick (Debian's
// python3-os-brick lives in the system interpreter), skipping (failing
// under CI) when there is none.
func brickPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", "import os_brick.initiator.connector").Run(); err == nil {
			return py
		}
	}
	msg := "interop: no python3 with os_brick (scripts/setup.sh installs python3-os-brick)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestAttachConsumer attaches volumes the way a compute host does: the
// attachments API (and, separately, the legacy actions) hand out
// connection_info, os-brick's connector connects it and the test writes a
// known pattern through the path os-brick returns; after the detach the
// volume is uploaded to an image in a chosen store whose checksum and
// os_hash_value must be the pattern's. Then the attachment commands of
// the cinder and openstack clients.
func TestAttachConsumer(t *testing.T) {
	requireInterop(t)
	requireTools(t, "cinder", "openstack")
	py := brickPython(t)
	a := startAshlar(t, "attach", ashlarOpts{postgres: true})
	c, ti, err := login(context.Background(), a.authURL(), "admin", adminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := logDir(t, "attach")
	e := &attachEnv{a: a, token: c.token, base: a.volumeURL + "/v3/" + ti.Token.Project.ID, python: py, dir: dir,
		admin: newCloud(dir, a.authURL(), "admin", adminPassword, "admin")}
	if e.helper, err = filepath.Abs(filepath.Join("testdata", "brick_attach.py")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(e.brick(t, nil, "connector")), &e.connector); err != nil {
		t.Fatal(err)
	}
	pattern := make([]byte, 1<<20)
	if _, err := rand.Read(pattern); err != nil {
		t.Fatal(err)
	}
	e.pattern = filepath.Join(dir, "pattern.bin")
	if err := os.WriteFile(e.pattern, pattern, 0o644); err != nil {
		t.Fatal(err)
	}
	if e.want, err = digestReader(io.MultiReader(bytes.NewReader(pattern), io.LimitReader(zeroReader{}, 1<<30-int64(len(pattern))))); err != nil {
		t.Fatal(err)
	}
	// Uploads of this type go to store reliable.
	e.call(t, "POST", "/types", 0, map[string]any{"volume_type": map[string]any{"name": "attach-reliable",
		"extra_specs": map[string]any{"image_service:store_id": "reliable"}}}, 200)

	t.Run("osbrick/attachments_api", e.attachmentsAPI)
	t.Run("osbrick/legacy_actions", e.legacyActions)
	t.Run("cli/cinder_attachment", e.cinderCLI)
	t.Run("cli/openstack_volume_attachment", e.openstackCLI)
}

// call sends one volume API request at microversion 3.mv and decodes the
// answer, which must have status want.
func (e *attachEnv) call(t *testing.T, method, path string, mv int, body any, want int) map[string]any {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	hdr := map[string]string{"Content-Type": "application/json", "OpenStack-API-Version": fmt.Sprintf("volume 3.%d", mv)}
	code, out := rawRequest(t, e.token, method, e.base+path, hdr, b)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	m := map[string]any{}
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
	return m
}

// brick runs the os-brick helper with stdin (may be nil).
func (e *attachEnv) brick(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.python, append([]string{e.helper}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("brick_attach.py %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), lastLines(errb.String(), 20))
	}
	return out.String()
}

// connectAndWrite hands connection_info to os-brick and writes the
// pattern through what it connected; it returns the path os-brick gave.
func (e *attachEnv) connectAndWrite(t *testing.T, info map[string]any) string {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Protocol, Path string
		Written        int
	}
	if err := json.Unmarshal([]byte(e.brick(t, b, "write", e.pattern)), &res); err != nil {
		t.Fatal(err)
	}
	if res.Protocol != "LOCAL" || res.Written != 1<<20 {
		t.Fatalf("os-brick wrote %+v", res)
	}
	return res.Path
}

// newVolume creates a 1 GiB volume of the attach type and waits for it.
func (e *attachEnv) newVolume(t *testing.T, name string) string {
	t.Helper()
	v := e.call(t, "POST", "/volumes", 0, map[string]any{"volume": map[string]any{"size": 1, "name": name, "volume_type": "attach-reliable"}}, 202)
	id := v["volume"].(map[string]any)["id"].(string)
	e.waitVolume(t, id, "available")
	return id
}

// waitVolume waits for a volume's status and returns the volume.
func (e *attachEnv) waitVolume(t *testing.T, id, status string) map[string]any {
	t.Helper()
	var v map[string]any
	eventually(t, 2*time.Minute, 200*time.Millisecond, "volume "+id+" "+status, func() (bool, string) {
		v = e.call(t, "GET", "/volumes/"+id, 0, nil, 200)["volume"].(map[string]any)
		return v["status"] == status, fmt.Sprint(v["status"])
	})
	return v
}

// uploadAndCheck uploads the detached volume to an image and checks that
// the image, in store reliable, holds the pattern followed by zeros.
func (e *attachEnv) uploadAndCheck(t *testing.T, vol string) {
	t.Helper()
	up := e.call(t, "POST", "/volumes/"+vol+"/action", 0, map[string]any{"os-volume_upload_image": map[string]any{
		"image_name": "attached-" + vol, "disk_format": "raw", "container_format": "bare"}}, 202)
	imageID := up["os-volume_upload_image"].(map[string]any)["image_id"].(string)
	waitImageStatus(t, e.admin, imageID, "active", 5*time.Minute)
	e.waitVolume(t, vol, "available")
	checkImage(t, e.admin, imageID, "reliable", e.want)
}

// attachmentsAPI: create with the connector (3.54), os-brick, complete,
// delete, upload.
func (e *attachEnv) attachmentsAPI(t *testing.T) {
	vol := e.newVolume(t, "brick-attachments")
	const server = "9f0e1c52-3b0a-4b57-9d3e-2f6d1b7c8a01"
	att := e.call(t, "POST", "/attachments", 54, map[string]any{"attachment": map[string]any{
		"volume_uuid": vol, "instance_uuid": server, "connector": e.connector, "mode": "rw"}}, 200)["attachment"].(map[string]any)
	id := att["id"].(string)
	flat := att["connection_info"].(map[string]any)
	if flat["driver_volume_type"] != "local" || flat["attachment_id"] != id || flat["access_mode"] != "rw" {
		t.Fatalf("connection_info %v", flat)
	}
	if v := e.waitVolume(t, vol, "attaching"); len(v["attachments"].([]any)) != 0 {
		t.Fatalf("attaching volume lists attachments %v", v["attachments"])
	}
	// Nova turns the attachment's flat connection_info back into
	// {driver_volume_type, data} before handing it to os-brick.
	data := map[string]any{}
	for k, v := range flat {
		if k != "driver_volume_type" {
			data[k] = v
		}
	}
	path := e.connectAndWrite(t, map[string]any{"driver_volume_type": flat["driver_volume_type"], "data": data})
	if path != flat["device_path"] {
		t.Fatalf("os-brick connected %s, connection_info said %v", path, flat["device_path"])
	}
	e.call(t, "POST", "/attachments/"+id+"/action", 44, map[string]any{"os-complete": nil}, 204)
	v := e.waitVolume(t, vol, "in-use")
	if atts := v["attachments"].([]any); len(atts) != 1 || atts[0].(map[string]any)["server_id"] != server {
		t.Fatalf("in-use volume's attachments %v", atts)
	}
	if shown := e.call(t, "GET", "/attachments/"+id, 27, nil, 200)["attachment"].(map[string]any); shown["status"] != "attached" {
		t.Fatalf("shown attachment %v", shown)
	}
	left := e.call(t, "DELETE", "/attachments/"+id, 27, nil, 200)
	if atts := left["attachments"].([]any); len(atts) != 0 {
		t.Fatalf("delete left %v", atts)
	}
	e.waitVolume(t, vol, "available")
	e.uploadAndCheck(t, vol)
}

// legacyActions: os-reserve, os-initialize_connection, os-brick,
// os-attach; os-begin_detaching, os-terminate_connection, os-detach;
// upload.
func (e *attachEnv) legacyActions(t *testing.T) {
	vol := e.newVolume(t, "brick-legacy")
	act := func(body map[string]any, want int) map[string]any {
		return e.call(t, "POST", "/volumes/"+vol+"/action", 0, body, want)
	}
	act(map[string]any{"os-reserve": nil}, 202)
	e.waitVolume(t, vol, "attaching")
	info := act(map[string]any{"os-initialize_connection": map[string]any{"connector": e.connector}}, 200)["connection_info"].(map[string]any)
	if info["driver_volume_type"] != "local" {
		t.Fatalf("connection_info %v", info)
	}
	e.connectAndWrite(t, info)
	act(map[string]any{"os-attach": map[string]any{"instance_uuid": "5a1f8a0e-8f5e-4d4b-a0f0-8c4e1a2b3c4d", "mountpoint": "/dev/vdb"}}, 202)
	if v := e.waitVolume(t, vol, "in-use"); len(v["attachments"].([]any)) != 1 {
		t.Fatalf("attachments %v", v["attachments"])
	}
	act(map[string]any{"os-begin_detaching": nil}, 202)
	e.waitVolume(t, vol, "detaching")
	act(map[string]any{"os-terminate_connection": map[string]any{"connector": e.connector}}, 202)
	act(map[string]any{"os-detach": map[string]any{}}, 202)
	if v := e.waitVolume(t, vol, "available"); len(v["attachments"].([]any)) != 0 {
		t.Fatalf("detached volume's attachments %v", v["attachments"])
	}
	e.uploadAndCheck(t, vol)
}

// cinderCLI: cinder attachment-create/-list/-show/-complete/-delete.
func (e *attachEnv) cinderCLI(t *testing.T) {
	vol := e.newVolume(t, "cli-cinder")
	const server = "0c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f"
	out := e.admin.ok(t, "cinder", "--os-volume-api-version", "3.54", "attachment-create", vol, server,
		"--connect", "True", "--initiator", "iqn.2004-10.com.example:compute-9", "--ip", "10.0.0.9", "--host", "compute-9",
		"--mountpoint", "/dev/vdc", "--mode", "rw")
	created := parseTable(out)
	id := created["id"]
	if id == "" || created["status"] != "attaching" || created["volume_id"] != vol || created["instance"] != server ||
		created["driver_volume_type"] != "local" || created["attachment_id"] != id || created["access_mode"] != "rw" {
		t.Fatalf("attachment-create printed:\n%s", out)
	}
	list := e.admin.ok(t, "cinder", "--os-volume-api-version", "3.27", "attachment-list", "--volume-id", vol)
	if !strings.Contains(list, id) || !strings.Contains(list, "attaching") {
		t.Fatalf("attachment-list:\n%s", list)
	}
	shown := parseTable(e.admin.ok(t, "cinder", "--os-volume-api-version", "3.27", "attachment-show", id))
	if shown["id"] != id || shown["attach_mode"] != "rw" || shown["status"] != "attaching" {
		t.Fatalf("attachment-show: %v", shown)
	}
	// A volume that is not multiattach takes no second attachment.
	e.admin.refused(t, []string{"status must be available or downloading to reserve", "HTTP 400"},
		"cinder", "--os-volume-api-version", "3.27", "attachment-create", vol, server)
	e.admin.ok(t, "cinder", "--os-volume-api-version", "3.44", "attachment-complete", id)
	if v := parseTable(e.admin.ok(t, "cinder", "show", vol)); v["status"] != "in-use" || !strings.Contains(v["attached_servers"], server) {
		t.Fatalf("cinder show after complete: %v", v)
	}
	e.admin.refused(t, []string{"must not be migrating, attached", "HTTP 400"}, "cinder", "delete", vol)
	e.admin.ok(t, "cinder", "--os-volume-api-version", "3.27", "attachment-delete", id)
	e.waitVolume(t, vol, "available")
	if list := e.admin.ok(t, "cinder", "--os-volume-api-version", "3.27", "attachment-list", "--volume-id", vol); strings.Contains(list, id) {
		t.Fatalf("attachment-list after delete:\n%s", list)
	}
}

// openstackCLI: openstack volume attachment list/set/complete/show/delete
// (create needs a compute service to look the server up, so the
// attachment is reserved with cinder).
func (e *attachEnv) openstackCLI(t *testing.T) {
	vol := e.newVolume(t, "cli-openstack")
	const server = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	id := parseTable(e.admin.ok(t, "cinder", "--os-volume-api-version", "3.27", "attachment-create", vol, server))["id"]
	osc := func(mv string, args ...string) []string {
		return append([]string{"openstack", "--os-volume-api-version", mv, "volume", "attachment"}, args...)
	}
	var list []map[string]any
	e.admin.json(t, &list, osc("3.27", "list", "-f", "json")...)
	found := false
	for _, row := range list {
		if row["ID"] == id {
			found = row["Volume ID"] == vol && row["Server ID"] == server && row["Status"] == "reserved"
		}
	}
	if !found {
		t.Fatalf("volume attachment list: %v", list)
	}
	var set map[string]any
	e.admin.json(t, &set, osc("3.27", "set", id, "--host", "compute-8", "--ip", "10.0.0.8", "--mountpoint", "/dev/vdd",
		"--initiator", "iqn.2004-10.com.example:compute-8", "-f", "json")...)
	props, _ := set["Properties"].(map[string]any)
	if set["Status"] != "attaching" || props["driver_volume_type"] != "local" || props["attachment_id"] != id {
		t.Fatalf("volume attachment set: %v", set)
	}
	e.admin.ok(t, osc("3.44", "complete", id)...)
	var shown map[string]any
	e.admin.json(t, &shown, osc("3.27", "show", id, "-f", "json")...)
	if shown["Status"] != "attached" || shown["Instance ID"] != server || shown["Attach Mode"] != "rw" {
		t.Fatalf("volume attachment show: %v", shown)
	}
	var v map[string]any
	e.admin.json(t, &v, "openstack", "volume", "show", vol, "-f", "json")
	if v["status"] != "in-use" {
		t.Fatalf("volume after complete: %v", v["status"])
	}
	e.admin.ok(t, osc("3.27", "delete", id)...)
	e.waitVolume(t, vol, "available")
	e.admin.refused(t, []string{"404"}, osc("3.27", "show", id)...)
}
