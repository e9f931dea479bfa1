package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeers runs Ashlar beside real OpenStack services: a real glance-api
// behind Ashlar's volume service, a real Keystone as Ashlar's external
// identity, and a real cinder-api using Ashlar's image service.
func TestPeers(t *testing.T) {
	requireInterop(t)
	requireTools(t, "openstack", "cinder")
	defer logTook(t, time.Now())
	t.Run("glance_behind_volume", testPeerGlance)
	t.Run("keystone_external_identity", testPeerKeystone)
	t.Run("cinder_api_on_image", testPeerCinder)
}

// testPeerGlance: Ashlar's volume service with a real Glance as its image
// service validates store ids against it, creates volumes from its images
// and uploads volumes to the store the volume type names.
func testPeerGlance(t *testing.T) {
	g := startGlance(t)
	a := startAshlar(t, "peer-glance", ashlarOpts{services: []string{"identity", "volume"}, glanceAPIServers: g.url})
	dir := logDir(t, "peer-glance")
	admin := newCloud(dir, a.authURL(), "admin", adminPassword, "admin")

	// Store ids are validated against the real Glance's stores.
	admin.ok(t, "openstack", "volume", "type", "create", "--public", "peer-cheap")
	admin.refused(t, []string{"HTTP 404", "Store nosuch not enabled in glance."},
		"cinder", "type-key", "peer-cheap", "set", "image_service:store_id=nosuch")
	admin.refused(t, []string{"HTTP 400", "Store web is read-only in glance."},
		"cinder", "type-key", "peer-cheap", "set", "image_service:store_id=web")
	admin.ok(t, "cinder", "type-key", "peer-cheap", "set", "image_service:store_id=cheap")

	// An image in the real Glance (store reliable) becomes a volume.
	data := randomBytes(t, 1<<20)
	img := glanceRequest(t, "POST", g.url+"/v2/images", map[string]string{"Content-Type": "application/json"},
		`{"name": "peer-source", "disk_format": "raw", "container_format": "bare", "visibility": "public"}`, http.StatusCreated)
	imageID := fmt.Sprint(img["id"])
	glanceRequest(t, "PUT", g.url+"/v2/images/"+imageID+"/file",
		map[string]string{"Content-Type": "application/octet-stream", "X-Image-Meta-Store": "reliable"}, string(data), http.StatusNoContent)

	vol := parseTable(admin.ok(t, "cinder", "create", "--image-id", imageID, "--volume-type", "peer-cheap", "--name", "peer-vol", "1"))
	volID := vol["id"]
	if volID == "" {
		t.Fatalf("cinder create printed no id: %v", vol)
	}
	waitVolume(t, admin, volID, "available")

	// Upload to image lands in the type's store of the real Glance.
	up := parseTable(admin.ok(t, "cinder", "upload-to-image", "--disk-format", "raw", "--container-format", "bare", volID, "peer-from-volume"))
	newID := up["image_id"]
	if newID == "" {
		t.Fatalf("upload-to-image printed no image_id: %v", up)
	}
	var got map[string]any
	eventually(t, 5*time.Minute, 2*time.Second, "glance image "+newID+" active", func() (bool, string) {
		got = glanceRequest(t, "GET", g.url+"/v2/images/"+newID, nil, "", http.StatusOK)
		if got["status"] == "killed" || got["status"] == "deleted" {
			t.Fatalf("image %s is %v", newID, got["status"])
		}
		return got["status"] == "active", fmt.Sprint(got["status"])
	})
	want, err := digestReader(io.MultiReader(strings.NewReader(string(data)), io.LimitReader(zeroReader{}, 1<<30-int64(len(data)))))
	if err != nil {
		t.Fatal(err)
	}
	if got["stores"] != "cheap" || got["checksum"] != want.md5 || got["os_hash_value"] != want.sha512 || got["size"] != float64(want.size) {
		t.Errorf("uploaded image: stores %v checksum %v size %v, want cheap %s %d (sha512 match: %v)",
			got["stores"], got["checksum"], got["size"], want.md5, want.size, got["os_hash_value"] == want.sha512)
	}
	if st, err := os.Stat(filepath.Join(g.stores, "cheap", newID)); err != nil || st.Size() != want.size {
		t.Errorf("glance's cheap store directory: %v (size %v), want a %d-byte file", err, st, want.size)
	}
	waitVolume(t, admin, volID, "available")
}

// glanceRequest sends one request to the suite's keystone-less Glance.
func glanceRequest(t *testing.T, method, url string, hdr map[string]string, body string, want int) map[string]any {
	t.Helper()
	code, b := rawRequest(t, glanceToken, method, url, hdr, []byte(body))
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %.500s", method, url, code, want, b)
	}
	out := map[string]any{}
	if len(b) > 0 {
		if err := json.Unmarshal([]byte(b), &out); err != nil {
			t.Fatalf("%s %s: %v in %.300s", method, url, err, b)
		}
	}
	return out
}

// testPeerKeystone: Ashlar's image and volume services accept tokens of a
// real Keystone (external identity mode) with their roles.
func testPeerKeystone(t *testing.T) {
	ctx := context.Background()
	k := startKeystone(t)
	kadmin, kti, err := login(ctx, k.url+"/v3", "admin", keystoneAdminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	dom := kti.Token.User.Domain.ID
	if err := kadmin.provision(ctx, dom,
		account{User: "ashlar", Password: "ashlar-service-pw", Project: "service", Role: "admin"},
		account{User: "demo", Password: "demo-pw", Project: "demo", Role: "member"}); err != nil {
		t.Fatal(err)
	}
	a := startAshlar(t, "peer-keystone", ashlarOpts{services: []string{"image", "volume"}, externalIdentity: map[string]string{
		"auth_url": k.url + "/v3", "username": "ashlar", "password": "ashlar-service-pw", "project_name": "service",
		"user_domain_name": "Default", "project_domain_name": "Default"}})
	if err := kadmin.registerEndpoint(ctx, "image", "glance", a.imageURL); err != nil {
		t.Fatal(err)
	}
	if err := kadmin.registerEndpoint(ctx, "volumev3", "cinderv3", a.volumeURL+"/v3/%(project_id)s"); err != nil {
		t.Fatal(err)
	}
	dir := logDir(t, "peer-keystone")
	admin := newCloud(dir, k.url+"/v3", "admin", keystoneAdminPassword, "admin")
	demo := newCloud(dir, k.url+"/v3", "demo", "demo-pw", "demo")

	// Tokens that Keystone does not know are refused by both services.
	for _, u := range []string{a.imageURL + "/v2/images", a.volumeURL + "/v3/" + kti.Token.Project.ID + "/volumes"} {
		if code, body := rawRequest(t, "not-a-keystone-token", "GET", u, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a bogus token: %d, want 401: %.200s", u, code, body)
		}
	}
	// Image: upload as admin into a named store, visible to the member as public.
	file := filepath.Join(dir, "peer.raw")
	if err := os.WriteFile(file, randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out := parseTable(admin.ok(t, "glance", "image-create", "--name", "peer-ks", "--disk-format", "raw",
		"--container-format", "bare", "--visibility", "public", "--file", file, "--store", "reliable"))
	checkImage(t, admin, out["id"], "reliable", digestFile(t, file))
	if out["owner"] != kti.Token.Project.ID {
		t.Errorf("image owner %q, want the Keystone project %s", out["owner"], kti.Token.Project.ID)
	}
	var imgs []map[string]any
	demo.json(t, &imgs, "openstack", "image", "list", "-f", "json")
	found := false
	for _, i := range imgs {
		found = found || i["ID"] == out["id"]
	}
	if !found {
		t.Errorf("member of another project does not list the public image: %v", imgs)
	}
	// Volume types and extra specs need admin.
	admin.ok(t, "openstack", "volume", "type", "create", "--public", "peer-ks-type")
	demo.refused(t, []string{"HTTP 403"}, "cinder", "type-key", "peer-ks-type", "set", "image_service:store_id=cheap")
	admin.ok(t, "cinder", "type-key", "peer-ks-type", "set", "image_service:store_id=cheap")
	// A member makes a volume from the public image and uploads it: the
	// volume service carries the member's Keystone token to the image service.
	var v map[string]any
	demo.json(t, &v, "openstack", "volume", "create", "--size", "1", "--type", "peer-ks-type", "--image", out["id"], "peer-ks-vol", "-f", "json")
	waitVolume(t, demo, fmt.Sprint(v["id"]), "available")
	var up map[string]any
	demo.json(t, &up, "openstack", "image", "create", "--volume", fmt.Sprint(v["id"]), "peer-ks-from-volume", "-f", "json")
	newImage := fmt.Sprint(up["image_id"])
	waitImageStatus(t, demo, newImage, "active", 5*time.Minute)
	var shown map[string]any
	demo.json(t, &shown, "openstack", "image", "show", newImage, "-f", "json")
	if imageField(shown, "stores") != "cheap" || imageField(shown, "owner") != keystoneProjectID(t, k, "demo", "demo-pw") {
		t.Errorf("member's uploaded image: stores %q owner %q, want cheap and the member's Keystone project",
			imageField(shown, "stores"), imageField(shown, "owner"))
	}
	// The member does not see the admin project's volumes, and vice versa for its own.
	var vols []map[string]any
	admin.json(t, &vols, "openstack", "volume", "list", "-f", "json")
	for _, x := range vols {
		if x["ID"] == v["id"] {
			t.Errorf("admin's project lists the member's volume without --all-projects")
		}
	}
}

// testPeerCinder: a real cinder-api validates image_service:store_id
// against Ashlar's image service: writable stores accepted, unknown 404,
// read-only 400; a member may not set extra specs (403). It authenticates
// users with keystonemiddleware against Ashlar's embedded identity.
func testPeerCinder(t *testing.T) {
	ctx := context.Background()
	a := startAshlar(t, "peer-cinder", ashlarOpts{})
	admin, ti, err := login(ctx, a.authURL(), "admin", adminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.provision(ctx, ti.Token.User.Domain.ID,
		account{User: "cinder", Password: "cinder-service-pw", Project: "service", Role: "admin"},
		account{User: "peer-member", Password: "peer-member-pw", Project: "peer-member", Role: "member"}); err != nil {
		t.Fatal(err)
	}
	cinderURL := startCinderAPI(t, a.identityURL, a.imageURL, "cinder-service-pw")
	member, mti, err := login(ctx, a.authURL(), "peer-member", "peer-member-pw", "peer-member")
	if err != nil {
		t.Fatal(err)
	}
	base := cinderURL + "/v3/" + ti.Token.Project.ID
	js := map[string]string{"Content-Type": "application/json"}
	code, body := rawRequest(t, admin.token, "POST", base+"/types", js, []byte(`{"volume_type": {"name": "peer-type", "os-volume-type-access:is_public": true}}`))
	if code != http.StatusOK {
		t.Fatalf("real cinder-api: create type with an Ashlar token: %d %.500s", code, body)
	}
	var vt struct {
		VolumeType idName `json:"volume_type"`
	}
	if err := json.Unmarshal([]byte(body), &vt); err != nil {
		t.Fatal(err)
	}
	spec := func(tok, project, store string) (int, string) {
		return rawRequest(t, tok, "POST", cinderURL+"/v3/"+project+"/types/"+vt.VolumeType.ID+"/extra_specs", js,
			[]byte(`{"extra_specs": {"image_service:store_id": "`+store+`"}}`))
	}
	for _, tc := range []struct {
		store string
		code  int
		msg   string
	}{
		{"cheap", http.StatusOK, `"image_service:store_id": "cheap"`},
		{"reliable", http.StatusOK, `"image_service:store_id": "reliable"`},
		{"fast", http.StatusOK, `"image_service:store_id": "fast"`},
		{"nosuch", http.StatusNotFound, "Store nosuch not enabled in glance."},
		{readOnlyStore, http.StatusBadRequest, "Store web is read-only in glance."},
	} {
		code, body := spec(admin.token, ti.Token.Project.ID, tc.store)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("real cinder-api, image_service:store_id=%s: %d %.300s, want %d with %q", tc.store, code, body, tc.code, tc.msg)
		}
	}
	if code, body := spec(member.token, mti.Token.Project.ID, "cheap"); code != http.StatusForbidden {
		t.Errorf("real cinder-api, member sets an extra spec: %d %.300s, want 403", code, body)
	}
}

// keystoneProjectID returns the Keystone project id of a user's own project.
func keystoneProjectID(t *testing.T, k *keystonePeer, user, password string) string {
	t.Helper()
	_, ti, err := login(context.Background(), k.url+"/v3", user, password, user)
	if err != nil {
		t.Fatal(err)
	}
	return ti.Token.Project.ID
}
