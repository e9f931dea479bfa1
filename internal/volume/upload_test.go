package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// waitImage waits until the test Glance reports the image status want.
func (e *env) waitImage(id, want string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		img, _ := e.glance.image(id)
		if img != nil && img["status"] == want {
			return img
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("image %s: %v, want status %s", id, img, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUploadToImageStore(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.createType("cheap-type", map[string]string{StoreSpec: "cheap"})
		data := bytes.Repeat([]byte{7}, 1<<20)
		src := e.glance.addImage(map[string]any{"name": "anchor", "anchor_prop": "x", "os_glance_foo": "no", "img_signature": "no"}, data)
		v := e.createVolume("member", projA, map[string]any{"volume_type": "cheap-type", "imageRef": src}, "available")
		id := v["id"].(string)
		act := func(token string, body any, hdr ...string) apitest.Resp {
			return e.Do(token, "POST", "/v3/"+projA+"/volumes/"+id+"/action", body, hdr...)
		}

		// Rejected requests leave no image behind and the volume available.
		before := e.glance.imageCount()
		for _, c := range []struct {
			name string
			body map[string]any
			mv   string
			msg  string
		}{
			{"no name", map[string]any{}, "", "Invalid input for field/attribute os-volume_upload_image. Value: {}. 'image_name' is a required property"},
			{"iso", map[string]any{"image_name": "i", "disk_format": "iso"}, "", "Invalid input for field/attribute disk_format. Value: iso. 'iso' is not one of ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop']"},
			{"force", map[string]any{"image_name": "i", "force": "maybe"}, "", ""},
			{"visibility at 3.0", map[string]any{"image_name": "i", "visibility": "private"}, "", "Invalid input for field/attribute os-volume_upload_image. Value: {'image_name': 'i', 'visibility': 'private'}. Additional properties are not allowed ('visibility' was unexpected)"},
			{"bad visibility", map[string]any{"image_name": "i", "visibility": "everyone"}, "volume 3.1", ""},
			{"long name", map[string]any{"image_name": strings.Repeat("n", 256)}, "", ""},
			{"container", map[string]any{"image_name": "i", "container_format": "weird"}, "", "Invalid container-format 'weird' specified. Allowed container-formats are bare, compressed."},
		} {
			var r apitest.Resp
			if c.mv != "" {
				r = act("member", map[string]any{"os-volume_upload_image": c.body}, "OpenStack-API-Version", c.mv)
			} else {
				r = act("member", map[string]any{"os-volume_upload_image": c.body})
			}
			fault, msg := errMessage(t, r)
			if r.Code != 400 || fault != "badRequest" || c.msg != "" && msg != c.msg {
				t.Errorf("%s: %d %s", c.name, r.Code, r.Body)
			}
		}
		if r := act("memberB", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i"}}); r.Code != 400 {
			t.Errorf("other project's URL: %d", r.Code)
		}
		if r := e.Do("memberB", "POST", "/v3/volumes/"+id+"/action", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i"}}); r.Code != 404 {
			t.Errorf("other project's volume: %d", r.Code)
		}
		if r := act("reader", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i"}}); r.Code != 403 {
			t.Errorf("reader upload: %d", r.Code)
		}
		if r := act("member", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i", "visibility": "public"}}, "OpenStack-API-Version", "volume 3.1"); r.Code != 403 {
			t.Errorf("member public upload: %d %s", r.Code, r.Body)
		}
		if n := e.glance.imageCount(); n != before {
			t.Fatalf("rejected uploads left %d images", n-before)
		}
		e.waitStatus("member", projA, id, "available")

		// The real upload: 202 body, image in the type's store, data intact.
		r := act("member", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "up", "disk_format": "raw"}})
		body := e.MustJSON(202, r)["os-volume_upload_image"].(map[string]any)
		wantKeys(t, "upload", body, "container_format", "disk_format", "display_description", "id", "image_id",
			"image_name", "protected", "size", "status", "updated_at", "visibility", "volume_type")
		if body["status"] != "uploading" || body["volume_type"].(map[string]any)["extra_specs"].(map[string]any)[StoreSpec] != "cheap" {
			t.Errorf("upload body %v", body)
		}
		imgID := body["image_id"].(string)
		img := e.waitImage(imgID, "active")
		if img["stores"] != "cheap" {
			t.Errorf("image stored in %v, want cheap", img["stores"])
		}
		if img["anchor_prop"] != "x" || img["os_glance_foo"] != nil || img["img_signature"] != nil || img["min_ram"] != nil {
			t.Errorf("copied properties: %v", img)
		}
		e.waitStatus("member", projA, id, "available")
		_, up := e.glance.image(imgID)
		if img["size"] != gib || !bytes.Equal(up[:len(data)], data) {
			t.Errorf("uploaded %v bytes", img["size"])
		}

		// A volume without the spec goes to the default store (no header).
		plain := e.createVolume("member", projA, map[string]any{}, "available")
		r = e.Do("member", "POST", "/v3/"+projA+"/volumes/"+plain["id"].(string)+"/action",
			map[string]any{"os-volume_upload_image": map[string]any{"image_name": "plain", "disk_format": "qcow2"}})
		pimg := e.waitImage(e.MustJSON(202, r)["os-volume_upload_image"].(map[string]any)["image_id"].(string), "active")
		if pimg["stores"] != "fast" {
			t.Errorf("plain image in %v", pimg["stores"])
		}
		if last := e.glance.uploadStores; last[len(last)-1] != "" || last[0] != "cheap" {
			t.Errorf("X-Image-Meta-Store headers %v", last)
		}

		// Second upload while uploading: 400.
		e.MustJSON(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "uploading"}}))
		if r := act("member", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "again"}}); r.Code != 400 {
			t.Errorf("upload while uploading: %d", r.Code)
		} else if _, msg := errMessage(t, r); msg != "Invalid volume: Volume "+id+" status must be available" {
			t.Errorf("message %q", msg)
		}
		if r := e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil); r.Code != 400 {
			t.Errorf("delete while uploading: %d", r.Code)
		}
		e.MustJSON(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		// The store disappears from the image service: upload refused, nothing left.
		e.glance.mu.Lock()
		e.glance.stores = e.glance.stores[:1]
		e.glance.mu.Unlock()
		before = e.glance.imageCount()
		if r := act("member", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "gone"}}); r.Code != 400 {
			t.Errorf("upload to vanished store: %d %s", r.Code, r.Body)
		}
		if e.glance.imageCount() != before {
			t.Errorf("image left behind")
		}
		e.waitStatus("member", projA, id, "available")
	})
}

// From the moment a volume is uploading, a task exists that moves it on:
// a node that dies while the image is being made (before the 202) leaves
// work another node finishes or rolls back, never a volume stuck in
// uploading (the cluster chaos run found one). The image gets the id the
// task names.
func TestUploadRecordedBeforeImage(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		var seen []string
		e.glance.beforeCreate = func(fields map[string]any) {
			err := db.EachRow(context.Background(), d, func(r db.Row) error {
				var state, payload string
				if err := r.Scan(&state, &payload); err != nil {
					return err
				}
				var p workPayload
				if err := json.Unmarshal([]byte(payload), &p); err != nil {
					return err
				}
				seen = append(seen, state)
				if p.ImageID != fields["id"] {
					t.Errorf("task names image %s, the image is created as %v", p.ImageID, fields["id"])
				}
				return nil
			}, `SELECT state, payload FROM tasks WHERE subject = ? AND kind = ?`, id, workUpload)
			if err != nil {
				t.Error(err)
			}
		}
		body := e.MustJSON(202, e.Do("member", "POST", "/v3/"+projA+"/volumes/"+id+"/action",
			map[string]any{"os-volume_upload_image": map[string]any{"image_name": "early"}}))["os-volume_upload_image"].(map[string]any)
		if len(seen) != 1 || seen[0] != "running" {
			t.Fatalf("upload tasks while the image was made: %v, want one held (running)", seen)
		}
		e.waitStatus("member", projA, id, "available")
		e.waitImage(body["image_id"].(string), "active")
		waitTasksDone(t, d)
	})
}

func TestUploadFailureCleansUp(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.glance.sizeCap = 4 << 20
		v := e.createVolume("member", projA, map[string]any{}, "available")
		id := v["id"].(string)
		r := e.Do("member", "POST", "/v3/"+projA+"/volumes/"+id+"/action",
			map[string]any{"os-volume_upload_image": map[string]any{"image_name": "big"}}, "OpenStack-API-Version", "volume 3.1")
		body := e.MustJSON(202, r)["os-volume_upload_image"].(map[string]any)
		reqID := r.Header.Get("X-Openstack-Request-Id")
		e.waitStatus("member", projA, id, "available")
		deadline := time.Now().Add(5 * time.Second)
		for {
			if img, _ := e.glance.image(body["image_id"].(string)); img == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("failed upload's image not deleted")
			}
			time.Sleep(20 * time.Millisecond)
		}
		var msgs []any
		for time.Now().Before(deadline) {
			msgs = e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/messages?resource_uuid="+id, nil, "OpenStack-API-Version", "volume 3.5"))["messages"].([]any)
			if len(msgs) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(msgs) != 1 {
			t.Fatalf("messages %v", msgs)
		}
		m := msgs[0].(map[string]any)
		wantKeys(t, "message", m, "created_at", "event_id", "guaranteed_until", "id", "links", "message_level",
			"request_id", "resource_type", "resource_uuid", "user_message")
		if m["event_id"] != "VOLUME_VOLUME_003_006" || m["user_message"] != "copy volume to image:Not enough quota resource for operation." ||
			m["request_id"] != reqID || m["resource_type"] != "VOLUME" {
			t.Errorf("message %v", m)
		}
		if r := e.Do("member", "GET", "/v3/"+projA+"/messages", nil); r.Code != 404 {
			t.Errorf("messages at 3.0: %d", r.Code)
		}
		if r := e.Do("memberB", "GET", "/v3/"+projB+"/messages/"+m["id"].(string), nil, "OpenStack-API-Version", "volume 3.5"); r.Code != 404 {
			t.Errorf("other project's message: %d", r.Code)
		}
		e.MustJSON(204, e.Do("member", "DELETE", "/v3/"+projA+"/messages/"+m["id"].(string), nil, "OpenStack-API-Version", "volume 3.5"))
	})
}
