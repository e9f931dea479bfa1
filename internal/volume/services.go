package volume

// The admin views of the volume services: os-services (list, enable,
// disable, freeze, thaw), os-hosts (list, show) and capabilities/{host}.
// Ashlar runs, in every node, what Cinder splits in processes: a scheduler
// and one cinder-volume per backend. Their hosts are named as Cinder names
// them, <hostname> and <hostname>@<backend>; what operators set on them is
// stored per backend (persist_services.go), so every node agrees.

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// The binaries (and topics) of Ashlar's services, by Cinder's names.
const (
	binaryScheduler = "cinder-scheduler"
	binaryVolume    = "cinder-volume"
)

// Microversions of the services API.
const (
	mvServiceCluster      = 7  // cluster
	mvReplicationCluster  = 26 // freeze/thaw name a cluster or a host
	mvServiceBackendState = 49 // backend_state
)

// volumeService is one service this node runs.
type volumeService struct {
	key  serviceKey
	host string
	zone string
	b    *backend // nil for the scheduler
}

// services lists the scheduler, then each backend's cinder-volume.
func (s *Service) services() []volumeService {
	out := []volumeService{{key: serviceKey{binaryScheduler, ""}, host: s.hostname, zone: s.deps.Config.Volume.DefaultAvailabilityZone}}
	for _, b := range s.backends {
		out = append(out, volumeService{key: serviceKey{binaryVolume, b.cfg.Name}, host: s.hostname + "@" + b.cfg.Name, zone: b.az, b: b})
	}
	return out
}

// matchHost reports whether a service's host matches value as Cinder's
// host filters do (_filter_host): exactly, as value#<pool>, and, when
// value names no backend, as value@<backend>.
func matchHost(host, value string) bool {
	switch {
	case host == value:
		return true
	case strings.Contains(value, "#"):
		return false
	case strings.HasPrefix(host, value+"#"):
		return true
	}
	return !strings.Contains(value, "@") && strings.HasPrefix(host, value+"@")
}

// servicesMatching are the services whose host matches host ("": all) and
// whose binary is binary ("": all).
func (s *Service) servicesMatching(host, binary string) []volumeService {
	var out []volumeService
	for _, svc := range s.services() {
		if (host == "" || matchHost(svc.host, host)) && (binary == "" || svc.key.Binary == binary) {
			out = append(out, svc)
		}
	}
	return out
}

// enabledBackend returns the backend whose cinder-volume service host is
// exactly host (<hostname>@<backend>) and enabled: a migration's target.
func (s *Service) enabledBackend(ctx context.Context, host string) (*backend, error) {
	for _, svc := range s.servicesMatching(host, binaryVolume) {
		if svc.host == host {
			enabled, err := s.backendEnabled(ctx, svc.b.cfg.Name)
			if err != nil || !enabled {
				return nil, err
			}
			return svc.b, nil
		}
	}
	return nil, nil
}

// backendEnabled reports whether the backend's service is enabled (the
// scheduler places nothing on a disabled one).
func (s *Service) backendEnabled(ctx context.Context, name string) (bool, error) {
	states, err := serviceStates(ctx, s.deps.DB)
	return !states[serviceKey{binaryVolume, name}].Disabled, err
}

// serviceTime is the time a service reports as its last update: the node
// answering is up, and its services report to it continuously.
func serviceTime() string { return time.Now().UTC().Format(timeFmt) }

func (s *Service) listServices(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:services:index", ""); err != nil {
		return err
	}
	ctx := r.Context()
	states, err := serviceStates(ctx, s.deps.DB)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	mv := versionOf(r)
	out := []any{}
	for _, svc := range s.servicesMatching(q.Get("host"), q.Get("binary")) {
		st := states[svc.key]
		status := "enabled"
		if st.Disabled {
			status = "disabled"
		}
		m := map[string]any{"binary": svc.key.Binary, "host": svc.host, "zone": svc.zone, "status": status,
			"state": "up", "updated_at": serviceTime(), "disabled_reason": st.DisabledReason}
		if mv >= mvServiceCluster {
			m["cluster"] = nil
		}
		if svc.b != nil {
			m["replication_status"] = "disabled"
			m["active_backend_id"] = nil
			m["frozen"] = st.Frozen
			if mv >= mvServiceBackendState {
				m["backend_state"] = "up"
				if _, _, err := svc.b.capabilities(ctx); err != nil {
					m["backend_state"] = "down"
				}
			}
		}
		out = append(out, m)
	}
	return reply(w, http.StatusOK, map[string]any{"services": out})
}

// serviceRequest is a validated os-services update body.
type serviceRequest struct {
	Host, Binary, Service string
	// Reason is disable-log-reason's disabled_reason.
	Reason *string
}

// parseServiceUpdate validates enable, disable and disable-log-reason
// bodies (Cinder's enable_and_disable schema, and disabled_reason).
func parseServiceUpdate(r *http.Request, withReason bool) (*serviceRequest, error) {
	in, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	allowed := []string{"binary", "host", "cluster", "service"}
	if withReason {
		allowed = append(allowed, "disabled_reason")
	}
	if err := checkAllowed("", in, allowed...); err != nil {
		return nil, err
	}
	req := &serviceRequest{}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&req.Binary, "binary"}, {&req.Service, "service"}} {
		v, err := optString(in, f.name, 255)
		if err != nil {
			return nil, err
		}
		if v != nil && *v == "" {
			return nil, invalidInput(f.name, "", "'' is too short")
		}
		if v != nil {
			*f.dst = *v
		}
	}
	if req.Binary == "" && req.Service == "" {
		return nil, invalidInput("", in, "%s is not valid under any of the given schemas", pyRepr(in, true))
	}
	host, err := optString(in, "host", 255)
	if err != nil {
		return nil, err
	}
	if host == nil || *host == "" {
		return nil, errs.E(errs.Invalid, "Invalid input received: Host field is missing.")
	}
	req.Host = *host
	if raw, ok := in["disabled_reason"]; ok && withReason {
		reason, ok := raw.(string)
		if !ok {
			return nil, invalidInput("disabled_reason", raw, "%s is not of type 'string'", pyRepr(raw, true))
		}
		// oslo's check_string_length, on the reason without its spaces
		switch n := len([]rune(strings.TrimSpace(reason))); {
		case n < 1:
			return nil, errs.E(errs.Invalid, "Invalid input received: disabled_reason has %d characters, less than 1.", n)
		case n > 255:
			return nil, errs.E(errs.Invalid, "Invalid input received: disabled_reason has %d characters, more than 255.", n)
		}
		req.Reason = &reason
	}
	return req, nil
}

// updateService serves PUT /os-services/{action}: enable, disable,
// disable-log-reason, freeze and thaw. Ashlar's backends do not replicate,
// so failover is an unknown action, as are the 3.32 log-level actions.
func (s *Service) updateService(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:services:update", ""); err != nil {
		return err
	}
	action := r.PathValue("action")
	switch action {
	case "freeze", "thaw":
		return s.freezeService(w, r, action == "freeze")
	case "enable", "disable", "disable-log-reason":
	default:
		return errs.E(errs.Invalid, "Invalid input received: Unknown action")
	}
	req, err := parseServiceUpdate(r, action == "disable-log-reason")
	if err != nil {
		return err
	}
	binary := req.Binary
	if binary == "" {
		binary = req.Service
	}
	svcs := s.servicesMatching(req.Host, binary)
	if len(svcs) == 0 {
		return errs.E(errs.NotFound, "Service %s could not be found on host %s.", binary, req.Host)
	}
	disabled := action != "enable"
	if err := setServiceDisabled(r.Context(), s.deps.DB, svcs[0].key, disabled, req.Reason); err != nil {
		return err
	}
	status := "enabled"
	if disabled {
		status = "disabled"
	}
	resp := map[string]any{"disabled": disabled, "status": status, "host": req.Host, "service": req.Service, "binary": req.Binary}
	if req.Reason != nil {
		resp["disabled_reason"] = *req.Reason
	}
	return reply(w, http.StatusOK, resp)
}

// freezeService freezes or thaws the cinder-volume service host names: a
// frozen backend refuses the operations that change its volumes (volume
// deletion, here). host must name one backend's service.
func (s *Service) freezeService(w http.ResponseWriter, r *http.Request, freeze bool) error {
	action := "volume:thaw_host"
	if freeze {
		action = "volume:freeze_host"
	}
	if err := enforce(r, action, ""); err != nil {
		return err
	}
	in, err := decodeObject(r)
	if err != nil {
		return err
	}
	if err := checkAllowed("", in, "cluster", "host"); err != nil {
		return err
	}
	host, err := optString(in, "host", 255)
	if err != nil {
		return err
	}
	cluster, err := optString(in, "cluster", 0)
	if err != nil {
		return err
	}
	hasHost, hasCluster := host != nil && *host != "", cluster != nil && *cluster != ""
	switch {
	case versionOf(r) >= mvReplicationCluster && hasHost == hasCluster:
		return errs.E(errs.Invalid, "Invalid input received: One and only one of cluster and host must be set.")
	case hasCluster:
		// Ashlar's services are in no cluster.
		return errs.E(errs.Invalid, "Invalid input received: No service found with cluster=%s", *cluster)
	case !hasHost:
		return errs.E(errs.Invalid, "Invalid input received: Host field is missing.")
	}
	svcs := s.servicesMatching(*host, binaryVolume)
	if len(svcs) == 0 {
		return errs.E(errs.Invalid, "Invalid input received: No service found with host=%s", *host)
	}
	for _, svc := range svcs[1:] {
		if svc.host != svcs[0].host {
			return errs.E(errs.Invalid, "Services from different clusters found.")
		}
	}
	changed, err := setServiceFrozen(r.Context(), s.deps.DB, svcs[0].key, freeze)
	if err != nil {
		return err
	}
	if !changed {
		return errs.E(errs.Invalid, "Invalid input received: No service could be changed: frozen in ['%s'] must be %s to failover.",
			svcs[0].host, pyRepr(!freeze, false))
	}
	return replyEmpty(w, http.StatusOK)
}

// checkNotFrozen refuses to change a volume on a frozen backend (Cinder's
// assert_not_frozen).
func (s *Service) checkNotFrozen(ctx context.Context, q db.Querier, v *vol) error {
	if v.Host == nil {
		return nil
	}
	frozen, err := backendFrozen(ctx, q, *v.Host)
	if err == nil && frozen {
		err = errs.E(errs.Invalid, "Invalid input received: Modification operations are not allowed on frozen storage backends.")
	}
	return err
}

// listHosts serves GET /os-hosts: the enabled services, optionally of one
// zone.
func (s *Service) listHosts(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:hosts", ""); err != nil {
		return err
	}
	states, err := serviceStates(r.Context(), s.deps.DB)
	if err != nil {
		return err
	}
	zone := r.URL.Query().Get("zone")
	out := []any{}
	for _, svc := range s.services() {
		if states[svc.key].Disabled || zone != "" && svc.zone != zone {
			continue
		}
		out = append(out, map[string]any{"host_name": svc.host, "service": svc.key.Binary, "zone": svc.zone,
			"service-status": "available", "service-state": "enabled", "last-update": serviceTime()})
	}
	return reply(w, http.StatusOK, map[string]any{"hosts": out})
}

// showHost serves GET /os-hosts/{host}: the volumes on an enabled
// cinder-volume service's backend and their snapshots, in total and per
// project.
func (s *Service) showHost(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:hosts", ""); err != nil {
		return err
	}
	host := r.PathValue("host")
	ctx := r.Context()
	states, err := serviceStates(ctx, s.deps.DB)
	if err != nil {
		return err
	}
	var svc *volumeService
	for _, c := range s.servicesMatching(host, binaryVolume) {
		if !states[c.key].Disabled {
			svc = &c
			break
		}
	}
	if svc == nil {
		return errs.E(errs.NotFound, "Service %s could not be found on host %s.", binaryVolume, host)
	}
	usage, err := backendUsage(ctx, s.deps.DB, svc.b.cfg.Name)
	if err != nil {
		return err
	}
	out := make([]any, 0, len(usage))
	for i, u := range usage {
		project := u.Project
		if i == 0 {
			project = "(total)"
		}
		out = append(out, map[string]any{"resource": map[string]any{"host": host, "project": project,
			"volume_count": strconv.FormatInt(u.Volumes, 10), "total_volume_gb": strconv.FormatInt(u.SizeGiB, 10), "snapshot_count": strconv.FormatInt(u.Snapshots, 10),
			"total_snapshot_gb": strconv.FormatInt(u.SnapshotSizeGiB, 10)}})
	}
	return reply(w, http.StatusOK, map[string]any{"host": out})
}

// standardProperties are the properties every Cinder driver reports in its
// capabilities (_init_standard_capabilities).
var standardProperties = map[string]any{
	"thin_provisioning":   map[string]any{"title": "Thin Provisioning", "description": "Sets thin provisioning.", "type": "boolean"},
	"compression":         map[string]any{"title": "Compression", "description": "Enables compression.", "type": "boolean"},
	"qos":                 map[string]any{"title": "QoS", "description": "Enables QoS.", "type": "boolean"},
	"replication_enabled": map[string]any{"title": "Replication", "description": "Enables replication.", "type": "boolean"},
}

// showCapabilities serves GET /capabilities/{host}: the capabilities of
// the first cinder-volume service host matches.
func (s *Service) showCapabilities(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:capabilities", ""); err != nil {
		return err
	}
	host := r.PathValue("host")
	svcs := s.servicesMatching(host, binaryVolume)
	if len(svcs) == 0 {
		return errs.E(errs.NotFound, "Can't find service: %s", host)
	}
	caps, _, err := svcs[0].b.capabilities(r.Context())
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{
		"namespace": "OS::Storage::Capabilities::" + svcs[0].host, "vendor_name": caps["vendor_name"],
		"volume_backend_name": caps["volume_backend_name"], "pool_name": nil, "driver_version": caps["driver_version"],
		"storage_protocol": caps["storage_protocol"], "display_name": nil, "description": nil, "visibility": nil,
		"replication_targets": []any{}, "properties": standardProperties,
	})
}
