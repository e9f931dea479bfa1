package volume

// Volume transfers: a project offers a volume (create: the volume goes to
// awaiting-transfer and the caller gets the auth key, shown this once),
// and whichever project presents the key accepts it: the volume changes
// owner in one transaction. Two paths serve them, as in Cinder:
// /os-volume-transfer (the old extension, which knows no no_snapshots) and
// /volume-transfers (v3: no_snapshots from 3.55, paging and sorting from
// 3.59). Both render the same views, richer from 3.55 and 3.57.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Microversions of the transfer API.
const (
	mvTransferSnapshots  = 55 // no_snapshots
	mvTransferHistory    = 57 // source/destination project, accepted
	mvTransferPagination = 59 // marker, limit, offset, sort on /volume-transfers
)

// Lengths of the random strings of a transfer, in hex digits (Cinder's
// volume_transfer_key_length and volume_transfer_salt_length).
const (
	authKeyLength = 16
	saltLength    = 8
)

// transferPathV3 is the v3 collection; the other is os-volume-transfer.
const transferPathV3 = "volume-transfers"

// isV3Transfers reports whether the request came through /volume-transfers.
func isV3Transfers(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/"+transferPathV3)
}

// randomHex returns n random hex digits.
func randomHex(n int) (string, error) {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b)[:n], nil
}

// keyHash is what is stored of an auth key: its HMAC-SHA256 under the
// transfer's salt.
func keyHash(salt, key string) string {
	m := hmac.New(sha256.New, []byte(salt))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// transferCreate is a validated transfer create body.
type transferCreate struct {
	VolumeID    string
	Name        *string
	NoSnapshots bool
}

// parseTransferCreate validates a create body: no_snapshots is a field of
// the v3 path from 3.55 only.
func parseTransferCreate(r *http.Request) (*transferCreate, error) {
	in, err := decodeEntity(r, "transfer")
	if err != nil {
		return nil, err
	}
	allowed := []string{"volume_id", "name"}
	withSnapshots := isV3Transfers(r) && versionOf(r) >= mvTransferSnapshots
	if withSnapshots {
		allowed = append(allowed, "no_snapshots")
	}
	if err := checkAllowed("transfer", in, allowed...); err != nil {
		return nil, err
	}
	c := &transferCreate{}
	raw, ok := in["volume_id"]
	if !ok {
		return nil, invalidInput("transfer", in, "'volume_id' is a required property")
	}
	if c.VolumeID, ok = raw.(string); !ok || !isUUID(c.VolumeID) {
		return nil, invalidInput("volume_id", raw, "%s is not a 'uuid'", pyRepr(raw, true))
	}
	if c.Name, err = optString(in, "name", 255); err != nil {
		return nil, err
	}
	if c.Name != nil {
		trimmed := strings.TrimSpace(*c.Name)
		c.Name = &trimmed
	}
	if v, ok := in["no_snapshots"]; ok && withSnapshots {
		if c.NoSnapshots, err = parseBool("no_snapshots", v); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (s *Service) createTransfer(w http.ResponseWriter, r *http.Request) error {
	req, err := parseTransferCreate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := loadOwned(ctx, s.deps.DB, r, req.VolumeID, "volume:create_transfer", getVolume, volumeNotFound)
	if err != nil {
		return err
	}
	if v.Status != "available" {
		return errs.E(errs.Invalid, "Invalid volume: status must be available")
	}
	if !req.NoSnapshots {
		snaps, err := volumeSnapshots(ctx, s.deps.DB, v.ID)
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			if sn.Status != "available" {
				return errs.E(errs.Invalid, "Invalid snapshot: snapshot: %s status must be available", sn.ID)
			}
		}
	}
	key, err := randomHex(authKeyLength)
	if err != nil {
		return err
	}
	salt, err := randomHex(saltLength)
	if err != nil {
		return err
	}
	t := &transfer{ID: uuid.NewString(), VolumeID: v.ID, Name: req.Name, Salt: salt, CryptHash: keyHash(salt, key),
		NoSnapshots: req.NoSnapshots, SourceProjectID: v.ProjectID, CreatedAt: db.Now()}
	if err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error { return offerVolume(ctx, tx, t) }); err != nil {
		return err
	}
	view := s.transferDetail(r, t)
	view["auth_key"] = key
	return reply(w, http.StatusAccepted, map[string]any{"transfer": view})
}

// transferFor loads the request's transfer: one whose volume is in the
// caller's project, or any for admins (Cinder's _transfer_get).
func (s *Service) transferFor(r *http.Request, q db.Querier, action string) (*transfer, error) {
	id := r.PathValue("transfer_id")
	t, err := getTransfer(r.Context(), q, id)
	if err != nil {
		return nil, err
	}
	if !caller(r).IsAdmin() && t.SourceProjectID != caller(r).ProjectID {
		return nil, transferNotFound(id)
	}
	return t, enforce(r, action, t.SourceProjectID)
}

func (s *Service) showTransfer(w http.ResponseWriter, r *http.Request) error {
	t, err := s.transferFor(r, s.deps.DB, "volume:get_transfer")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"transfer": s.transferDetail(r, t)})
}

// deleteTransfer withdraws an offer: the volume is available again.
func (s *Service) deleteTransfer(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.transferFor(r, tx, "volume:delete_transfer")
		if err != nil {
			return err
		}
		ended, err := withdrawTransfer(ctx, tx, t)
		if err == nil && !ended {
			err = transferNotFound(t.ID)
		}
		return err
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// parseAccept reads the auth key of an accept body (a string, or a number
// as some clients send a key of digits).
func parseAccept(r *http.Request) (string, error) {
	in, err := decodeEntity(r, "accept")
	if err != nil {
		return "", err
	}
	if err := checkAllowed("accept", in, "auth_key"); err != nil {
		return "", err
	}
	switch k := in["auth_key"].(type) {
	case string:
		return k, nil
	case json.Number:
		if _, err := strconv.ParseInt(k.String(), 10, 64); err == nil {
			return k.String(), nil
		}
		return "", invalidInput("auth_key", k, "%s is not of type 'string', 'integer'", k)
	case nil:
		if _, ok := in["auth_key"]; !ok {
			return "", invalidInput("accept", in, "'auth_key' is a required property")
		}
	}
	return "", invalidInput("auth_key", in["auth_key"], "%s is not of type 'string', 'integer'", pyRepr(in["auth_key"], true))
}

// acceptTransfer gives the volume to the caller's project when the auth
// key matches (compared in constant time, against its hash).
func (s *Service) acceptTransfer(w http.ResponseWriter, r *http.Request) error {
	key, err := parseAccept(r)
	if err != nil {
		return err
	}
	if err := enforce(r, "volume:accept_transfer", ""); err != nil {
		return err
	}
	ctx := r.Context()
	c := caller(r)
	var t *transfer
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if t, err = getTransfer(ctx, tx, r.PathValue("transfer_id")); err != nil {
			return err
		}
		if !hmac.Equal([]byte(keyHash(t.Salt, key)), []byte(t.CryptHash)) {
			return errs.E(errs.Invalid, "Invalid auth key: Attempt to transfer %s with invalid auth key.", t.ID)
		}
		v, err := getVolumeRow(ctx, tx, t.VolumeID)
		if err != nil {
			return err
		}
		if v.Status == "maintenance" {
			return errs.E(errs.Invalid, "Invalid volume: The volume cannot accept transfer in maintenance mode.")
		}
		snaps, err := volumeSnapshots(ctx, tx, v.ID)
		if err != nil {
			return err
		}
		if err := acceptTransfer(ctx, tx, t, c.UserID, c.ProjectID); err != nil {
			return err
		}
		return s.chargeTransfer(ctx, tx, v, snaps, t.NoSnapshots, c.ProjectID)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusAccepted, map[string]any{"transfer": s.transferSummary(r, t)})
}

// transferListRequest reads a transfer list query as Cinder does: on the
// v3 path from 3.59 marker, limit, offset and sort; everywhere else the
// created_at, id order. The other parameters filter on the transfer's
// fields (name being display_name); a parameter naming no field matches
// nothing, so an empty list (Cinder's is_valid_model_filters) — which is
// also what limit gets outside the paged path.
func transferListRequest(r *http.Request) (f transferFilter, p listPage, matches bool, err error) {
	q := r.URL.Query()
	c := caller(r)
	f = transferFilter{ProjectID: c.ProjectID, Equal: map[string]string{}}
	p = listPage{SortKey: "created_at", Limit: maxLimit}
	if q.Has("all_tenants") {
		if all, _ := parseBool("all_tenants", q.Get("all_tenants")); all && c.IsAdmin() {
			f.AllProjects = true
		}
		q.Del("all_tenants")
	}
	if isV3Transfers(r) && versionOf(r) >= mvTransferPagination {
		if p, err = transferPage(q); err != nil {
			return f, p, false, err
		}
		for _, k := range []string{"limit", "offset", "marker", "sort_key", "sort_dir", "sort"} {
			q.Del(k)
		}
	}
	matches = true
	for k := range q {
		col := k
		if k == "name" {
			col = "display_name"
		}
		if _, ok := transferFilterColumns[col]; !ok {
			matches = false
			continue
		}
		f.Equal[col] = q.Get(k)
	}
	return f, p, matches, nil
}

// transferPage reads the paging of /volume-transfers from 3.59: limit,
// offset, marker and the sort (get_sort_params: newest first by default).
func transferPage(q url.Values) (listPage, error) {
	p := listPage{SortKey: "created_at", SortDesc: true, Limit: maxLimit, Marker: q.Get("marker")}
	var err error
	if q.Has("limit") {
		if p.Limit, err = parseLimit(q.Get("limit")); err != nil {
			return p, err
		}
	}
	if q.Has("offset") {
		if p.Offset, err = parseOffset(q.Get("offset")); err != nil {
			return p, err
		}
	}
	dir := q.Get("sort_dir")
	if k := q.Get("sort_key"); k != "" {
		p.SortKey = k
	}
	if sort := q.Get("sort"); sort != "" {
		k, d, _ := strings.Cut(strings.Split(sort, ",")[0], ":")
		if p.SortKey = strings.TrimSpace(k); d != "" {
			dir = d
		}
	}
	switch dir {
	case "":
	case "asc", "desc":
		p.SortDesc = dir == "desc"
	default:
		return p, errs.E(errs.Invalid, "Invalid input received: Invalid sort direction: %s.", dir)
	}
	if _, ok := transferSortColumns[p.SortKey]; !ok {
		return p, errs.E(errs.Invalid, "Invalid input received: Invalid sort key %s.", p.SortKey)
	}
	return p, nil
}

func (s *Service) transferList(w http.ResponseWriter, r *http.Request, detail bool) error {
	if err := enforce(r, "volume:get_all_transfers", ""); err != nil {
		return err
	}
	f, p, matches, err := transferListRequest(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var ts []*transfer
	var more bool
	if matches {
		err = s.deps.DB.InReadTx(ctx, func(tx *db.Tx) error {
			if p.Marker != "" {
				// the marker is one of the transfers the caller may list
				m, err := getTransfer(ctx, tx, p.Marker)
				if err == nil && !f.AllProjects && m.SourceProjectID != f.ProjectID {
					err = transferNotFound(p.Marker)
				}
				if err != nil {
					return err
				}
			}
			var err error
			ts, more, err = listTransfers(ctx, tx, f, p)
			return err
		})
		if err != nil {
			return err
		}
	}
	view := s.transferSummary
	if detail {
		view = s.transferDetail
	}
	id := func(t *transfer) string { return t.ID }
	return reply(w, http.StatusOK, listBody(s, r, "transfers", "/"+transferPathV3, detail, ts, more, p.Limit, id, view))
}

// transferLinks are a transfer's links, under os-volume-transfer whichever
// path served it (Cinder's view builder has the one collection name).
func (s *Service) transferLinks(r *http.Request, id string) []map[string]string {
	return []map[string]string{
		{"rel": "self", "href": s.linkBase(r) + "/os-volume-transfer/" + id},
		{"rel": "bookmark", "href": s.bookmarkBase(r) + "/os-volume-transfer/" + id}}
}

// transferSummary is the list and accept view.
func (s *Service) transferSummary(r *http.Request, t *transfer) map[string]any {
	return map[string]any{"id": t.ID, "volume_id": t.VolumeID, "name": t.Name, "links": s.transferLinks(r, t.ID)}
}

// transferDetail is the show, detail-list and (with the auth key) create
// view, with the fields of the request's microversion.
func (s *Service) transferDetail(r *http.Request, t *transfer) map[string]any {
	m := s.transferSummary(r, t)
	m["created_at"] = fmtTime(t.CreatedAt)
	mv := versionOf(r)
	if mv >= mvTransferSnapshots {
		m["no_snapshots"] = t.NoSnapshots
	}
	if mv >= mvTransferHistory {
		m["source_project_id"] = t.SourceProjectID
		m["destination_project_id"] = t.DestinationProjectID
		m["accepted"] = t.Accepted
	}
	return m
}
