package volume

// The quota APIs: os-quota-sets (a project's limits, defaults and usage),
// os-quota-class-sets and limits, with Cinder's policy, validation and
// shapes (cinder/api/contrib/quotas.py, quota_classes.py, used_limits.py).

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// maxQuota is the largest limit a quota may have (Cinder's DB_MAX_INT).
const maxQuota = math.MaxInt32

func (s *Service) quotaRoutes(m *api.Mux, p string) {
	m.Handle("GET "+p+"/os-quota-sets/{target}", handler(s.showQuotaSet))
	m.Handle("GET "+p+"/os-quota-sets/{target}/defaults", handler(s.showQuotaDefaults))
	m.Handle("PUT "+p+"/os-quota-sets/{target}", handler(s.updateQuotaSet))
	m.Handle("DELETE "+p+"/os-quota-sets/{target}", handler(s.deleteQuotaSet))
	m.Handle("GET "+p+"/os-quota-class-sets/{class}", handler(s.showQuotaClass))
	m.Handle("PUT "+p+"/os-quota-class-sets/{class}", handler(s.updateQuotaClass))
	m.Handle("GET "+p+"/limits", handler(s.showLimits))
}

// quotaUsageView is one key of a quota set shown with usage=True.
type quotaUsageView struct {
	Limit    int64 `json:"limit"`
	InUse    int64 `json:"in_use"`
	Reserved int64 `json:"reserved"`
}

// quotaSet is a project's quota set by shown key: limits, or with usage
// each key's limit, in_use and reserved.
func (s *Service) quotaSet(r *http.Request, q db.Querier, project string, usage bool) (map[string]any, error) {
	ctx := r.Context()
	names, err := loadQuotaKeys(ctx, q)
	if err != nil {
		return nil, err
	}
	l, err := s.limitsFor(ctx, q, false, project)
	if err != nil {
		return nil, err
	}
	var used map[string]quotaUsage
	if usage {
		if used, err = projectUsages(ctx, q, project); err != nil {
			return nil, err
		}
	}
	out := map[string]any{}
	for _, k := range names.all() {
		if !usage {
			out[names.display(k)] = l.of(k)
			continue
		}
		u := used[k]
		out[names.display(k)] = quotaUsageView{Limit: l.of(k), InUse: u.InUse, Reserved: u.Reserved}
	}
	return out, nil
}

// classSet is a quota class's set: its limits, else the defaults.
func (s *Service) classSet(r *http.Request, class string) (map[string]any, error) {
	ctx := r.Context()
	names, err := loadQuotaKeys(ctx, s.deps.DB)
	if err != nil {
		return nil, err
	}
	l, err := s.limitsFor(ctx, s.deps.DB, true, class)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, k := range names.all() {
		out[names.display(k)] = l.of(k)
	}
	return out, nil
}

func (s *Service) showQuotaSet(w http.ResponseWriter, r *http.Request) error {
	target := r.PathValue("target")
	if err := enforce(r, "volume_extension:quotas:show", target); err != nil {
		return err
	}
	usage, err := boolQuery(r, "usage")
	if err != nil {
		return err
	}
	var set map[string]any
	err = s.deps.DB.InReadTx(r.Context(), func(tx *db.Tx) error {
		set, err = s.quotaSet(r, tx, target, usage)
		return err
	})
	if err != nil {
		return err
	}
	set["id"] = target
	return reply(w, http.StatusOK, map[string]any{"quota_set": set})
}

func (s *Service) showQuotaDefaults(w http.ResponseWriter, r *http.Request) error {
	target := r.PathValue("target")
	if err := enforce(r, "volume_extension:quotas:show", target); err != nil {
		return err
	}
	set, err := s.classSet(r, defaultQuotaClass)
	if err != nil {
		return err
	}
	set["id"] = target
	return reply(w, http.StatusOK, map[string]any{"quota_set": set})
}

// nonQuotaKeys may be sent in a quota set and are ignored (Cinder's
// NON_QUOTA_KEYS).
var nonQuotaKeys = map[string]bool{"tenant_id": true, "id": true}

// parseQuotaValue is Cinder's validate_integer of a limit: an integer or
// a string of one, from -1 to the largest integer.
func parseQuotaValue(key string, v any) (int64, error) {
	var str string
	switch x := v.(type) {
	case json.Number:
		str = x.String()
	case string:
		str = x
	default:
		str = pyRepr(v, false)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64)
	switch {
	case err != nil:
		return 0, errs.E(errs.Invalid, "%s must be an integer", key)
	case n < -1:
		return 0, errs.E(errs.Invalid, "%s must be >= -1", key)
	case n > maxQuota:
		return 0, errs.E(errs.Invalid, "%s must be <= %d", key, maxQuota)
	}
	return n, nil
}

// decodeQuotaBody reads {"<envelope>": {key: limit, ...}}: the envelope
// alone, an object of at least one key.
func decodeQuotaBody(r *http.Request, envelope string) (map[string]any, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	set, err := entity(body, envelope)
	if err != nil {
		return nil, err
	}
	for k := range body {
		if k != envelope {
			return nil, invalidInput(envelope, body, "Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	if len(set) == 0 {
		return nil, invalidInput(envelope, set, "{} does not have enough properties")
	}
	return set, nil
}

// parseQuotaSet checks a quota set's keys and limits as Cinder's schema
// does (the keys in order, bad keys reported together) and returns the
// limits by stored key, with each stored key's key as sent.
func parseQuotaSet(names quotaKeys, in map[string]any) (map[string]int64, map[string]string, error) {
	set, sent, bad := map[string]int64{}, map[string]string{}, []string{}
	for _, k := range sortedKeys(in) {
		if nonQuotaKeys[k] {
			continue
		}
		key, ok := names.parse(k)
		if !ok {
			bad = append(bad, k)
			continue
		}
		n, err := parseQuotaValue(k, in[k])
		if err != nil {
			return nil, nil, err
		}
		set[key], sent[key] = n, k
	}
	if len(bad) > 0 {
		return nil, nil, errs.E(errs.Invalid, "Invalid input received: Bad key(s) in quota set: %s", strings.Join(bad, ", "))
	}
	return set, sent, nil
}

func (s *Service) updateQuotaSet(w http.ResponseWriter, r *http.Request) error {
	target := r.PathValue("target")
	ctx := r.Context()
	in, err := decodeQuotaBody(r, "quota_set")
	if err != nil {
		return err
	}
	names, err := loadQuotaKeys(ctx, s.deps.DB)
	if err != nil {
		return err
	}
	set, sent, err := parseQuotaSet(names, in)
	if err != nil {
		return err
	}
	if err := enforce(r, "volume_extension:quotas:update", target); err != nil {
		return err
	}
	if len(target) > 255 {
		return errs.E(errs.Invalid, "Invalid input received: quota_set_name has %d characters, more than 255.", len(target))
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		// As Cinder, a limit below the usage is refused only where the
		// project has a limit of its own already (get_project_quotas
		// with defaults=False gives no usage for the others).
		own, err := limitsOf(ctx, tx, false, target)
		if err != nil {
			return err
		}
		used, err := projectUsages(ctx, tx, target)
		if err != nil {
			return err
		}
		for _, key := range sortedLimitKeys(set) {
			n := set[key]
			if _, has := own[key]; !has || n == -1 || key == "per_volume_gigabytes" {
				continue
			}
			if u := used[key].InUse + used[key].Reserved; n < u {
				return errs.E(errs.Invalid, "Quota %s limit must be equal or greater than existing resources. Current usage is %d and the requested limit is %d.", sent[key], u, n)
			}
		}
		return setLimits(ctx, tx, false, target, set)
	})
	if err != nil {
		return err
	}
	out, err := s.quotaSet(r, s.deps.DB, target, false)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"quota_set": out})
}

// sortedLimitKeys is a set's keys in order.
func sortedLimitKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Service) deleteQuotaSet(w http.ResponseWriter, r *http.Request) error {
	target := r.PathValue("target")
	if err := enforce(r, "volume_extension:quotas:delete", target); err != nil {
		return err
	}
	if err := deleteProjectLimits(r.Context(), s.deps.DB, target); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusOK)
}

func (s *Service) showQuotaClass(w http.ResponseWriter, r *http.Request) error {
	class := r.PathValue("class")
	if err := enforce(r, "volume_extension:quota_classes:get", ""); err != nil {
		return err
	}
	set, err := s.classSet(r, class)
	if err != nil {
		return err
	}
	set["id"] = class
	return reply(w, http.StatusOK, map[string]any{"quota_class_set": set})
}

func (s *Service) updateQuotaClass(w http.ResponseWriter, r *http.Request) error {
	class := r.PathValue("class")
	ctx := r.Context()
	in, err := decodeQuotaBody(r, "quota_class_set")
	if err != nil {
		return err
	}
	// The body is checked before the policy, as Cinder's schema is: a
	// bad body is 400 whoever sends it.
	names, err := loadQuotaKeys(ctx, s.deps.DB)
	if err != nil {
		return err
	}
	set, err := parseQuotaClassSet(in, names)
	if err != nil {
		return err
	}
	if err := enforce(r, "volume_extension:quota_classes:update", ""); err != nil {
		return err
	}
	if len(class) > 255 {
		return errs.E(errs.Invalid, "Invalid input received: quota_class_name has %d characters, more than 255.", len(class))
	}
	if err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error { return setLimits(ctx, tx, true, class, set) }); err != nil {
		return err
	}
	out, err := s.classSet(r, class)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"quota_class_set": out})
}

// parseQuotaClassSet checks a quota class set as Cinder's schema does: each
// key a quota (names), each value an integer or a string of digits.
func parseQuotaClassSet(in map[string]any, names quotaKeys) (map[string]int64, error) {
	set, bad := map[string]int64{}, []string{}
	for _, k := range sortedKeys(in) {
		key, ok := names.parse(k)
		if !ok {
			bad = append(bad, k)
			continue
		}
		n, err := parseQuotaValue(k, in[k])
		if _, isStr := in[k].(string); err != nil || isStr && n < 0 {
			return nil, invalidInput(fmt.Sprintf("quota_class_set/%s", k), in[k], "%s is not valid under any of the given schemas", pyRepr(in[k], true))
		}
		set[key] = n
	}
	if len(bad) > 0 {
		return nil, errs.E(errs.Invalid, "Invalid input received: Bad key(s) in quota class set: %s", strings.Join(bad, ", "))
	}
	return set, nil
}

// limitNames are the absolute limits of GET /limits, by quota key, and
// usedNames the used-limits extension's totals.
var (
	limitNames = map[string]string{"gigabytes": "maxTotalVolumeGigabytes", "backup_gigabytes": "maxTotalBackupGigabytes",
		"volumes": "maxTotalVolumes", "snapshots": "maxTotalSnapshots", "backups": "maxTotalBackups"}
	usedNames = map[string]string{"gigabytes": "totalGigabytesUsed", "backup_gigabytes": "totalBackupGigabytesUsed",
		"volumes": "totalVolumesUsed", "snapshots": "totalSnapshotsUsed", "backups": "totalBackupsUsed"}
)

// showLimits is GET /limits: the project's absolute limits and, with the
// used-limits policy, what it uses; no rate limits. From 3.39 an admin
// may name another project (project_id).
func (s *Service) showLimits(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	project := c.ProjectID
	if p := r.URL.Query().Get("project_id"); p != "" && versionOf(r) >= 39 && c.IsAdmin() {
		project = p
	}
	ctx := r.Context()
	abs := map[string]int64{}
	err := s.deps.DB.InReadTx(ctx, func(tx *db.Tx) error {
		l, err := s.limitsFor(ctx, tx, false, project)
		if err != nil {
			return err
		}
		for k, name := range limitNames {
			abs[name] = l.of(k)
		}
		if !allowed(r, "limits_extension:used_limits", "") {
			return nil
		}
		used, err := projectUsages(ctx, tx, project)
		for k, name := range usedNames {
			abs[name] = used[k].InUse
		}
		return err
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"limits": map[string]any{"rate": []any{}, "absolute": abs}})
}

// sortedKeys is m's keys in order, for deterministic checks and messages.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
