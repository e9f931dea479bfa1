package volume

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// capabilities returns a backend's capabilities under Cinder's names and
// with Cinder's types: strings, numbers and booleans, as get_pools shows
// them and extra specs are matched against them. storage_protocol and
// vendor_name default to what Cinder's reference (LVM) driver reports, so
// types written for it match.
func (b *backend) capabilities(ctx context.Context) (map[string]any, float64, error) {
	c, err := b.drv.Capabilities(ctx)
	if err != nil {
		return nil, 0, err
	}
	m := map[string]any{
		"volume_backend_name":        b.cfg.VolumeBackendName,
		"storage_protocol":           "iSCSI",
		"vendor_name":                "Open Source",
		"driver_version":             "1.0",
		"total_capacity_gb":          c.TotalCapacityGB,
		"free_capacity_gb":           c.FreeCapacityGB,
		"thin_provisioning_support":  c.ThinProvisioning,
		"thick_provisioning_support": !c.ThinProvisioning,
		"multiattach":                c.Multiattach,
	}
	if c.VolumeBackendName != "" {
		m["volume_backend_name"] = c.VolumeBackendName
	}
	maps.Copy(m, c.Extra)
	return m, c.FreeCapacityGB, nil
}

// schedule picks the backend for a volume among those that pass (see
// passes); the one with the most free space wins.
func (s *Service) schedule(ctx context.Context, specs map[string]string, az string, sizeGiB int64) (*backend, error) {
	var best *backend
	var bestFree float64
	for _, b := range s.backends {
		free, ok := s.passes(ctx, b, specs, az, sizeGiB)
		if ok && (best == nil || free > bestFree) {
			best, bestFree = b, free
		}
	}
	if best == nil {
		return nil, errs.E(errs.Invalid, "Could not find any available weighted backend.")
	}
	return best, nil
}

// passes is the scheduler's filtering of one backend for a volume: its
// service is enabled, it is in the availability zone (if one is asked
// for), it has the capacity (thin backends accept any size), and its
// capabilities satisfy the type's extra specs. Keys with a namespace other
// than "capabilities:" are ignored, as Cinder's CapabilitiesFilter does. It
// returns the backend's free space, by which backends are weighed.
func (s *Service) passes(ctx context.Context, b *backend, specs map[string]string, az string, sizeGiB int64) (float64, bool) {
	if az != "" && b.az != az {
		return 0, false
	}
	if enabled, err := s.backendEnabled(ctx, b.cfg.Name); err != nil || !enabled {
		return 0, false
	}
	caps, free, err := b.capabilities(ctx)
	if err != nil {
		s.deps.Logger.Warn("backend capabilities", "backend", b.cfg.Name, "err", err)
		return 0, false
	}
	thin := caps["thin_provisioning_support"] == true
	if !thin && free < float64(sizeGiB) {
		return 0, false
	}
	return free, satisfies(caps, specs)
}

func (s *Service) backendNamed(name string) *backend {
	for _, b := range s.backends {
		if b.cfg.Name == name {
			return b
		}
	}
	return nil
}

// satisfies matches extra specs against capabilities, as Cinder's
// CapabilitiesFilter does.
func satisfies(caps map[string]any, specs map[string]string) bool {
	keys := make([]string, 0, len(specs))
	for k := range specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := k
		if parts := strings.Split(k, ":"); len(parts) > 1 {
			if parts[0] != "capabilities" {
				continue
			}
			key = strings.Join(parts[1:], ":")
		}
		have, ok := caps[key]
		if !ok || !matchSpec(have, specs[k]) {
			return false
		}
	}
	return true
}

// matchSpec implements Cinder's extra_specs_ops.match: "<op> word"
// requirements, or equality with the whole requirement. As in Python, only
// a string capability equals a string; numeric operators read numbers,
// numeric strings and booleans; <is> compares oslo's bool_from_string of
// both sides, so a capability true matches "<is> True".
func matchSpec(value any, req string) bool {
	words := strings.Fields(req)
	if len(words) == 0 {
		return value == any(req)
	}
	op, args := words[0], words[1:]
	if op == "<or>" {
		return matchOr(value, args)
	}
	compare, ok := specOps[op]
	if !ok {
		return value == any(req)
	}
	return len(args) > 0 && compare(value, args[0])
}

// matchOr matches "<or> a <or> b ...": every other word is a candidate.
func matchOr(value any, words []string) bool {
	for i := 0; i < len(words); i += 2 {
		if value == any(words[i]) {
			return true
		}
	}
	return false
}

// specOps are extra_specs_ops' operators other than <or>, applied to the
// capability and the requirement's first word.
var specOps = map[string]func(value any, arg string) bool{
	"=":    numeric(func(a, b float64) bool { return a >= b }),
	"==":   numeric(func(a, b float64) bool { return a == b }),
	"!=":   numeric(func(a, b float64) bool { return a != b }),
	">=":   numeric(func(a, b float64) bool { return a >= b }),
	"<=":   numeric(func(a, b float64) bool { return a <= b }),
	"<is>": func(v any, arg string) bool { return boolFromString(v) == boolFromString(arg) },
	"<in>": textual(strings.Contains),
	"s==":  textual(func(a, b string) bool { return a == b }),
	"s!=":  func(v any, arg string) bool { return v != any(arg) },
	"s<":   textual(func(a, b string) bool { return a < b }),
	"s<=":  textual(func(a, b string) bool { return a <= b }),
	"s>":   textual(func(a, b string) bool { return a > b }),
	"s>=":  textual(func(a, b string) bool { return a >= b }),
}

// numeric applies cmp to both sides read as numbers (Python's float());
// false when either is not one.
func numeric(cmp func(a, b float64) bool) func(any, string) bool {
	return func(v any, arg string) bool {
		a, ok1 := toFloat(v)
		b, ok2 := toFloat(arg)
		return ok1 && ok2 && cmp(a, b)
	}
}

// textual applies cmp to a string capability; other capabilities never
// match (Python raises a TypeError there, which Cinder does not catch).
func textual(cmp func(a, b string) bool) func(any, string) bool {
	return func(v any, arg string) bool {
		s, ok := v.(string)
		return ok && cmp(s, arg)
	}
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// boolFromString is oslo.utils' bool_from_string (not strict): a boolean
// is itself; anything else is true when its text is one of 1, t, true, on,
// y, yes (any case, surrounding space ignored). A Python float's text is
// never one of them.
func boolFromString(v any) bool {
	var s string
	switch x := v.(type) {
	case bool:
		return x
	case string:
		s = x
	case float64:
		return false
	default:
		s = fmt.Sprint(x)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true
	}
	return false
}
