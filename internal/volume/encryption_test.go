package volume

import (
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// TestEncryptionTypes is tempest's create/get/update/delete of a type's
// encryption, with the refusals around it.
func TestEncryptionTypes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		typeID := e.createType("secret", nil)
		base := "/v3/" + projA + "/types/" + typeID + "/encryption"
		spec := map[string]any{"provider": "LuksEncryptor", "key_size": 256, "cipher": "aes-xts-plain64", "control_location": "front-end"}

		created := e.MustJSON(200, e.Do("admin", "POST", base, map[string]any{"encryption": spec}))["encryption"].(map[string]any)
		wantKeys(t, "create", created, "cipher", "control_location", "encryption_id", "key_size", "provider", "volume_type_id")
		if created["volume_type_id"] != typeID || !isUUID(created["encryption_id"].(string)) || created["key_size"] != float64(256) {
			t.Errorf("created %v", created)
		}
		shown := e.MustJSON(200, e.Do("admin", "GET", base, nil))
		wantKeys(t, "show", shown, "cipher", "control_location", "created_at", "deleted", "deleted_at", "encryption_id", "key_size",
			"provider", "updated_at", "volume_type_id")
		for k, v := range spec {
			if shown[k] != v && !(k == "key_size" && shown[k] == float64(256)) {
				t.Errorf("shown %s = %v, want %v", k, shown[k], v)
			}
		}
		if shown["encryption_id"] != created["encryption_id"] || shown["deleted"] != false {
			t.Errorf("shown %v", shown)
		}
		r := e.Do("admin", "POST", base, map[string]any{"encryption": spec})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Volume type encryption for type "+typeID+" already exists." {
			t.Errorf("second create: %d %q", r.Code, msg)
		}

		upd := map[string]any{"key_size": "128", "provider": "SomeProvider", "control_location": "back-end"}
		got := e.MustJSON(200, e.Do("admin", "PUT", base+"/provider", map[string]any{"encryption": upd}))["encryption"].(map[string]any)
		if got["key_size"] != float64(128) || got["provider"] != "SomeProvider" {
			t.Errorf("update answered %v", got)
		}
		shown = e.MustJSON(200, e.Do("admin", "GET", base, nil))
		if shown["key_size"] != float64(128) || shown["provider"] != "SomeProvider" || shown["control_location"] != "back-end" ||
			shown["cipher"] != "aes-xts-plain64" || shown["updated_at"] == nil {
			t.Errorf("after update %v", shown)
		}
		if item := e.MustJSON(200, e.Do("admin", "GET", base+"/cipher", nil)); len(item) != 1 || item["cipher"] != "aes-xts-plain64" {
			t.Errorf("item %v", item)
		}
		e.Must(404, e.Do("admin", "GET", base+"/nope", nil))

		// A volume of the type: its encryption metadata, and the type's
		// encryption is frozen while it exists.
		v := e.createVolume("member", projA, map[string]any{"volume_type": "secret"}, "available")
		vid := v["id"].(string)
		if v["encrypted"] != false {
			t.Errorf("Ashlar encrypts nothing, yet the volume says encrypted %v", v["encrypted"])
		}
		md := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volumes/"+vid+"/encryption", nil))
		wantKeys(t, "volume encryption", md, "cipher", "control_location", "encryption_key_id", "key_size", "provider")
		if md["provider"] != "SomeProvider" || md["encryption_key_id"] != nil {
			t.Errorf("volume encryption %v", md)
		}
		if item := e.Do("member", "GET", "/v3/"+projA+"/volumes/"+vid+"/encryption/provider", nil); item.Code != 200 || string(item.Body) != `"SomeProvider"` {
			t.Errorf("volume encryption item: %d %s", item.Code, item.Body)
		}
		e.Must(404, e.Do("memberB", "GET", "/v3/"+projB+"/volumes/"+vid+"/encryption", nil))
		for verb, r := range map[string]func() int{
			"update": func() int { return e.Do("admin", "PUT", base+"/provider", map[string]any{"encryption": upd}).Code },
			"delete": func() int { return e.Do("admin", "DELETE", base+"/provider", nil).Code },
		} {
			if code := r(); code != 400 {
				t.Errorf("%s while in use: %d", verb, code)
			}
		}
		e.Must(202, e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+vid, nil))

		e.Must(202, e.Do("admin", "DELETE", base+"/provider", nil))
		if shown := e.MustJSON(200, e.Do("admin", "GET", base, nil)); len(shown) != 0 {
			t.Errorf("after delete %v", shown)
		}
		e.Must(404, e.Do("admin", "DELETE", base+"/provider", nil))
		e.Must(404, e.Do("admin", "PUT", base+"/provider", map[string]any{"encryption": upd}))
		// A plain volume has no encryption specs.
		plain := e.createVolume("member", projA, map[string]any{}, "available")
		if md := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volumes/"+plain["id"].(string)+"/encryption", nil)); len(md) != 1 {
			t.Errorf("plain volume encryption %v", md)
		}
	})
}

// TestEncryptionTypesRefused covers validation, unknown types and policy.
func TestEncryptionTypesRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		typeID := e.createType("secret", nil)
		base := "/v3/" + projA + "/types/" + typeID + "/encryption"
		const unknown = "7ef4d7b5-6f1e-4dd5-9a7e-9a4b5f2e0c11"
		for _, c := range []struct {
			name, token, method, path string
			body                      any
			code                      int
			msg                       string
		}{
			{"unknown type", "admin", "POST", "/v3/" + projA + "/types/" + unknown + "/encryption",
				map[string]any{"encryption": map[string]any{"provider": "p", "control_location": "front-end"}}, 404, "Volume type " + unknown + " could not be found."},
			{"show unknown type", "admin", "GET", "/v3/" + projA + "/types/" + unknown + "/encryption", nil, 404, "Volume type " + unknown + " could not be found."},
			{"no provider", "admin", "POST", base, map[string]any{"encryption": map[string]any{"control_location": "front-end"}}, 400,
				"Invalid input for field/attribute encryption. Value: {'control_location': 'front-end'}. 'provider' is a required property"},
			{"bad location", "admin", "POST", base, map[string]any{"encryption": map[string]any{"provider": "p", "control_location": "middle"}}, 400,
				"Invalid input for field/attribute control_location. Value: middle. 'middle' is not one of ['front-end', 'back-end']"},
			{"bad key size", "admin", "POST", base, map[string]any{"encryption": map[string]any{"provider": "p", "control_location": "front-end", "key_size": "big"}}, 400,
				"Invalid input received: key_size must be an integer."},
			{"member create", "member", "POST", base, map[string]any{"encryption": map[string]any{"provider": "p", "control_location": "front-end"}}, 403,
				"Policy doesn't allow volume_extension:volume_type_encryption:create to be performed."},
			{"member show", "member", "GET", base, nil, 403, "Policy doesn't allow volume_extension:volume_type_encryption:get to be performed."},
			{"no encryption item", "admin", "GET", base + "/cipher", nil, 404, "Volume type encryption for type " + typeID + " does not exist."},
		} {
			r := e.Do(c.token, c.method, c.path, c.body)
			if _, msg := errMessage(t, r); r.Code != c.code || msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}
		// A type in use gets no encryption.
		e.createVolume("member", projA, map[string]any{"volume_type": "secret"}, "available")
		r := e.Do("admin", "POST", base, map[string]any{"encryption": map[string]any{"provider": "p", "control_location": "front-end"}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Cannot create encryption specs. Volume type in use." {
			t.Errorf("in use: %d %q", r.Code, msg)
		}
	})
}
