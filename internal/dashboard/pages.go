package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/progress"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// storeSpec is the volume-type extra spec naming the image store its
// volumes' uploads go to (Cinder's image_service:store_id).
const storeSpec = "image_service:store_id"

// Drift is why a volume type's uploads would fail or land somewhere
// unexpected: the store its spec names is gone, read-only or unhealthy.
type Drift string

// The kinds of store drift.
const (
	DriftNone      Drift = ""
	DriftGone      Drift = "store gone"
	DriftReadOnly  Drift = "store read-only"
	DriftUnhealthy Drift = "store unhealthy"
)

// TypeRow is a volume type as the types page shows it.
type TypeRow struct {
	apiType
	// Store is the type's store spec; Default when it has none (uploads
	// go to the default store).
	Store   string
	Default bool
	Drift   Drift
	Detail  string
}

// DriftOf judges every type against the stores: a type's uploads go to
// its store spec, or to the default store when it has none.
func DriftOf(types []apiType, stores []apiStore) []TypeRow {
	byID := map[string]apiStore{}
	def := ""
	for _, st := range stores {
		byID[st.ID] = st
		if st.Default == "true" {
			def = st.ID
		}
	}
	rows := make([]TypeRow, 0, len(types))
	for _, t := range types {
		row := TypeRow{apiType: t, Store: t.ExtraSpecs[storeSpec]}
		if row.Store == "" {
			row.Store, row.Default = def, true
		}
		st, ok := byID[row.Store]
		switch {
		case row.Store == "":
		case !ok:
			row.Drift, row.Detail = DriftGone, "no store "+row.Store+" is configured: uploads of this type fail"
		case st.ReadOnly == "true":
			row.Drift, row.Detail = DriftReadOnly, "store "+row.Store+" is read-only: uploads of this type fail"
		case st.Ashlar.Health == "unhealthy":
			row.Drift, row.Detail = DriftUnhealthy, "store "+row.Store+" failed its last check: "+st.Ashlar.HealthError
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

// StoreRow is a store as the stores page shows it.
type StoreRow struct {
	apiStore
	// Types are the volume types whose uploads land in the store.
	Types []string
	// Running counts the transfers in flight to or from it.
	Running int
}

// storeTypes reads the stores (unless withStores is false: there are
// none then) and the volume types, and judges the types' drift.
func (d *Dashboard) storeTypes(ctx context.Context, s *session, withStores bool) ([]apiStore, []TypeRow, error) {
	var stores []apiStore
	if withStores {
		var err error
		if stores, err = d.stores(ctx, s); err != nil {
			return nil, nil, err
		}
	}
	types, err := d.types(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	return stores, DriftOf(types, stores), nil
}

func (d *Dashboard) storesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	stores, types, err := d.storeTypes(r.Context(), s, true)
	if err != nil {
		return err
	}
	running, err := task.Find(r.Context(), d.o.DB, task.Filter{Active: true, Limit: 1000})
	if err != nil {
		return &pageError{http.StatusInternalServerError, err.Error()}
	}
	rows := make([]StoreRow, 0, len(stores))
	for _, st := range stores {
		row := StoreRow{apiStore: st}
		for _, t := range types {
			if t.Store == st.ID {
				row.Types = append(row.Types, t.Name)
			}
		}
		for _, t := range running {
			if containsStore(t.Store, st.ID) {
				row.Running++
			}
		}
		rows = append(rows, row)
	}
	return d.page(w, s, "stores", map[string]any{"Stores": rows})
}

func containsStore(list, id string) bool {
	for _, s := range strings.Split(list, ",") {
		if s == id {
			return true
		}
	}
	return false
}

func (d *Dashboard) typesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	_, rows, err := d.storeTypes(r.Context(), s, true)
	if err != nil {
		return err
	}
	drifted := 0
	for _, t := range rows {
		if t.Drift != DriftNone {
			drifted++
		}
	}
	return d.page(w, s, "types", map[string]any{"Types": rows, "Drifted": drifted})
}

// transferWindow is how far back the transfers page shows finished work.
const transferWindow = 24 * time.Hour

// Transfer is one operation as the transfers page and its JSON show it.
type Transfer struct {
	ID        string  `json:"id"`
	Operation string  `json:"operation"`
	Kind      string  `json:"kind"`
	Subject   string  `json:"subject"`
	Project   string  `json:"project_id"`
	Store     string  `json:"store"`
	State     string  `json:"state"`
	Done      int64   `json:"bytes_done"`
	Total     int64   `json:"bytes_total"`
	Percent   int     `json:"percent"`
	Rate      float64 `json:"rate"`
	ETA       int64   `json:"eta_seconds"`
	Stalled   bool    `json:"stalled"`
	Error     string  `json:"error,omitempty"`
	Started   string  `json:"started_at,omitempty"`
	Text      string  `json:"text"`
}

// operations names the task kinds for people.
var operations = map[string]string{
	"image.upload": "image upload", "image.import": "image import", "image.purge": "image delete",
	"volume.create": "volume create", "volume.clone": "volume clone", "volume.from_image": "volume from image",
	"volume.upload": "upload to image", "volume.snapshot": "snapshot", "volume.snapshot_delete": "snapshot delete",
	"volume.from_snapshot": "volume from snapshot", "volume.revert": "revert to snapshot",
	"volume.delete_cascade": "volume delete", "volume.migrate": "volume migration",
}

// transfers is the running and recent work the session may see: all for
// admins, their project's for members.
func (d *Dashboard) transfers(ctx context.Context, s *session) ([]Transfer, error) {
	f := task.Filter{Since: d.now().Add(-transferWindow), Limit: 200}
	if !s.Admin {
		f.ProjectID = s.ProjectID
	}
	infos, err := task.Find(ctx, d.o.DB, f)
	if err != nil {
		return nil, err
	}
	now := d.now()
	out := make([]Transfer, 0, len(infos))
	for _, i := range infos {
		v := progress.Of(i, now, d.o.StallAfter)
		op := operations[i.Kind]
		if op == "" {
			op = i.Kind
		}
		t := Transfer{ID: i.ID, Operation: op, Kind: i.Kind, Subject: i.Subject, Project: i.ProjectID, Store: i.Store,
			State: string(i.State), Done: v.Done, Total: v.Total, Percent: v.Percent, Rate: v.Rate,
			ETA: int64(v.ETA.Seconds()), Stalled: v.Stalled, Error: v.Error, Text: v.Message()}
		if !v.Started.IsZero() {
			t.Started = v.Started.UTC().Format(time.RFC3339)
		}
		if v.ETA < 0 {
			t.ETA = -1
		}
		if i.State == task.Failed && t.Error == "" {
			t.Error = i.LastError
		}
		out = append(out, t)
	}
	return out, nil
}

func (d *Dashboard) transfersPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ts, err := d.transfers(r.Context(), s)
	if err != nil {
		return &pageError{http.StatusInternalServerError, err.Error()}
	}
	var running, recent []Transfer
	for _, t := range ts {
		if t.State == string(task.Running) || t.State == string(task.Pending) {
			running = append(running, t)
		} else {
			recent = append(recent, t)
		}
	}
	return d.page(w, s, "transfers", map[string]any{"Running": running, "Recent": recent, "Flash": r.URL.Query().Get("started")})
}

// transfersJSON feeds the transfers page's live progress.
// Its failure is a plain-text 500, not a page.
func (d *Dashboard) transfersJSON(w http.ResponseWriter, r *http.Request, s *session) error {
	ts, err := d.transfers(r.Context(), s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"transfers": ts})
	return nil
}

// ImageRow is an image with the stores holding it.
type ImageRow struct {
	apiImage
	In []string
	// Missing are the writable stores that do not hold it (copy targets).
	Missing []string
}

func (d *Dashboard) imagesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	images, err := d.images(r.Context(), s)
	if err != nil {
		return err
	}
	stores, err := d.stores(r.Context(), s)
	if err != nil {
		return err
	}
	rows := make([]ImageRow, 0, len(images))
	for _, im := range images {
		row := ImageRow{apiImage: im}
		if im.Stores != "" {
			row.In = strings.Split(im.Stores, ",")
		}
		for _, st := range stores {
			if st.ReadOnly != "true" && !containsStore(im.Stores, st.ID) {
				row.Missing = append(row.Missing, st.ID)
			}
		}
		rows = append(rows, row)
	}
	return d.page(w, s, "images", map[string]any{"Images": rows, "Flash": r.URL.Query().Get("done")})
}

// copyImage starts a copy-image import of an image into one more store.
func (d *Dashboard) copyImage(w http.ResponseWriter, r *http.Request, s *session) error {
	id, st := r.PathValue("id"), r.PostForm.Get("store")
	body := map[string]any{"method": map[string]any{"name": "copy-image"}, "stores": []string{st}}
	if _, err := d.do(r.Context(), s.Token, http.MethodPost, d.o.ImageURL+"/v2/images/"+url.PathEscape(id)+"/import",
		body, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/transfers?started="+url.QueryEscape("copy of image "+id+" to "+st), http.StatusSeeOther)
	return nil
}

// deleteFromStore deletes one store's copy of an image.
func (d *Dashboard) deleteFromStore(w http.ResponseWriter, r *http.Request, s *session) error {
	id, st := r.PathValue("id"), r.PostForm.Get("store")
	if _, err := d.do(r.Context(), s.Token, http.MethodDelete,
		d.o.ImageURL+"/v2/stores/"+url.PathEscape(st)+"/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/images?done="+url.QueryEscape("image "+id+" deleted from store "+st), http.StatusSeeOther)
	return nil
}

// VolumeRow is a volume with where its uploads would go.
type VolumeRow struct {
	apiVolume
	// Store is the store an upload would land in ("" when policy hides
	// the type's spec from the user); Drift flags a type that drifted.
	Store string
	Drift Drift
}

func (d *Dashboard) volumesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	vols, err := d.volumes(r.Context(), s)
	if err != nil {
		return err
	}
	// Only admins may read types' store specs and stores detail.
	_, types, err := d.storeTypes(r.Context(), s, s.Admin)
	if err != nil {
		return err
	}
	byName := map[string]TypeRow{}
	for _, t := range types {
		byName[t.Name] = t
	}
	rows := make([]VolumeRow, 0, len(vols))
	for _, v := range vols {
		row := VolumeRow{apiVolume: v}
		if t, ok := byName[v.VolumeType]; ok && s.Admin {
			row.Store, row.Drift = t.Store, t.Drift
		}
		rows = append(rows, row)
	}
	return d.page(w, s, "volumes", map[string]any{"Volumes": rows})
}

// uploadVolume starts an upload to image (os-volume_upload_image).
func (d *Dashboard) uploadVolume(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	name := strings.TrimSpace(r.PostForm.Get("image_name"))
	format := r.PostForm.Get("disk_format")
	if format == "" {
		format = "raw"
	}
	body := map[string]any{"os-volume_upload_image": map[string]any{"image_name": name, "disk_format": format,
		"container_format": "bare", "force": false}}
	if _, err := d.do(r.Context(), s.Token, http.MethodPost, d.volumeURL(s)+"/volumes/"+url.PathEscape(id)+"/action",
		body, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/transfers?started="+url.QueryEscape("upload of volume "+id+" to image "+name), http.StatusSeeOther)
	return nil
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes": func(n int64) string { return progress.Bytes(n) },
	"bytesp": func(n *int64) string {
		if n == nil {
			return "-"
		}
		return progress.Bytes(*n)
	},
	"rate": func(r float64) string {
		if r <= 0 {
			return "-"
		}
		return progress.Bytes(int64(r)) + "/s"
	},
	"eta": func(s int64) string {
		if s < 0 {
			return "-"
		}
		return (time.Duration(s) * time.Second).String()
	},
	"join": strings.Join,
	"pct": func(p int) string {
		if p < 0 {
			return "?"
		}
		return fmt.Sprintf("%d%%", p)
	},
	"width": func(p int) int { return max(p, 0) },
	"short": func(id string) string {
		if len(id) > 8 {
			return id[:8]
		}
		return id
	},
}
