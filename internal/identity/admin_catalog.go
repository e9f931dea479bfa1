package identity

import (
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// ---- services and endpoints

var services = &collection[*catalogService]{
	member: "service", plural: "services",
	filters: []string{"type", "name"},
	all:     func(s *snapshot) []*catalogService { return s.services },
	find:    func(s *snapshot, id string) (*catalogService, bool) { c, ok := s.serviceByID[id]; return c, ok },
	attr: func(c *catalogService, a string) any {
		switch a {
		case "type":
			return c.Type
		case "name":
			return c.Name
		}
		return nil
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
	if t, ok := strField(in, "type"); ok {
		c.Type = t
	}
	if n, ok := strField(in, "name"); ok {
		c.Name = n
	}
	if e, ok := boolField(in, "enabled"); ok {
		c.Enabled = e
	}
	return nil
}

var endpoints = &collection[*endpoint]{
	member: "endpoint", plural: "endpoints",
	filters: []string{"interface", "service_id", "region_id"},
	all:     func(s *snapshot) []*endpoint { return s.endpoints },
	find:    func(s *snapshot, id string) (*endpoint, bool) { e, ok := s.endpointByID[id]; return e, ok },
	attr: func(e *endpoint, a string) any {
		switch a {
		case "interface":
			return e.Interface
		case "service_id":
			return e.ServiceID
		case "region_id":
			return regionValue(e.Region)
		}
		return nil
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
	if i, ok := strField(in, "interface"); ok {
		e.Interface = i
	}
	if u, ok := strField(in, "url"); ok {
		e.URL = u
	}
	if r, ok := strField(in, "region_id"); ok {
		e.Region = r
	} else if r, ok := strField(in, "region"); ok {
		e.Region = r
	}
	if en, ok := boolField(in, "enabled"); ok {
		e.Enabled = en
	}
	return nil
}
