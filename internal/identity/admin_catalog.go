package identity

import (
	"cmp"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// ---- services and endpoints

var services = &collection[*catalogService]{
	member: "service", plural: "services",
	items: func(s *snapshot) map[string]*catalogService { return s.serviceByID },
	order: func(a, b *catalogService) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	},
	attrs: map[string]func(*catalogService) any{
		"type": func(c *catalogService) any { return c.Type },
		"name": func(c *catalogService) any { return c.Name },
	},
	render:       (*Service).serviceJSON,
	createSchema: serviceCreate, updateSchema: serviceUpdate, nullBody: true,
	// a service's description is an extra, as in Keystone
	attributes: []string{"id", "type", "enabled", "name"},
	build: func(s *Service, in map[string]any) (*catalogService, error) {
		c := &catalogService{Enabled: true}
		return c, changeService(s, c, in)
	},
	change: changeService,
	clone:  func(c *catalogService) *catalogService { x := *c; return &x },
	insert: insertService, update: updateService, remove: deleteService,
}

func (s *Service) serviceJSON(c *catalogService) map[string]any {
	return s.withExtra(c, "services", map[string]any{"id": c.ID, "type": c.Type, "name": c.Name, "enabled": c.Enabled})
}

func changeService(_ *Service, c *catalogService, in map[string]any) error {
	set(&c.Type, in, "type")
	set(&c.Name, in, "name")
	set(&c.Enabled, in, "enabled")
	return nil
}

var endpoints = &collection[*endpoint]{
	member: "endpoint", plural: "endpoints",
	items: func(s *snapshot) map[string]*endpoint { return s.endpointByID },
	order: func(a, b *endpoint) int {
		return cmp.Or(strings.Compare(a.ServiceID, b.ServiceID), strings.Compare(a.Interface, b.Interface), strings.Compare(a.ID, b.ID))
	},
	attrs: map[string]func(*endpoint) any{
		"interface":  func(e *endpoint) any { return e.Interface },
		"service_id": func(e *endpoint) any { return e.ServiceID },
		"region_id":  func(e *endpoint) any { return regionValue(e.Region) },
	},
	render:       (*Service).endpointJSON,
	createSchema: endpointCreate, updateSchema: endpointUpdate, nullBody: true,
	attributes: []string{"id", "interface", "region_id", "region", "service_id", "url", "legacy_endpoint_id", "enabled"},
	build: func(s *Service, in map[string]any) (*endpoint, error) {
		e := &endpoint{Enabled: true}
		return e, changeEndpoint(s, e, in)
	},
	change: changeEndpoint,
	clone:  func(e *endpoint) *endpoint { x := *e; return &x },
	insert: insertEndpoint, update: updateEndpoint, remove: deleteEndpoint,
}

// regionValue is an endpoint's region as Keystone shows it: null when the
// endpoint has none.
func regionValue(region string) any {
	if region == "" {
		return nil
	}
	return region
}

func (s *Service) endpointJSON(e *endpoint) map[string]any {
	region := regionValue(e.Region)
	return s.withExtra(e, "endpoints", map[string]any{"id": e.ID, "service_id": e.ServiceID, "interface": e.Interface,
		"region": region, "region_id": region, "url": e.URL, "enabled": e.Enabled})
}

// changeEndpoint applies a validated body. The region is region_id, or the
// legacy region when region_id is absent; Ashlar's regions are those its
// endpoints name, so any region is accepted.
func changeEndpoint(s *Service, e *endpoint, in map[string]any) error {
	if sid, ok := strField(in, "service_id"); ok {
		if s.snap.Load().serviceByID[sid] == nil {
			return errs.E(errs.Invalid, "Expecting to find endpoint service_id in service table. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
		}
		e.ServiceID = sid
	}
	set(&e.Interface, in, "interface")
	set(&e.URL, in, "url")
	if r, ok := strField(in, "region_id"); ok {
		e.Region = r
	} else if r, ok := strField(in, "region"); ok {
		e.Region = r
	}
	set(&e.Enabled, in, "enabled")
	return nil
}
