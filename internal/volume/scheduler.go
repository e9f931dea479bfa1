package volume

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// capabilities returns a backend's capabilities as the strings extra specs
// are matched against. storage_protocol and vendor_name default to what
// Cinder's reference (LVM) driver reports, so types written for it match.
func (b *backend) capabilities(ctx context.Context) (map[string]string, float64, error) {
	c, err := b.drv.Capabilities(ctx)
	if err != nil {
		return nil, 0, err
	}
	m := map[string]string{
		"volume_backend_name":       b.cfg.VolumeBackendName,
		"storage_protocol":          "iSCSI",
		"vendor_name":               "Open Source",
		"driver_version":            "1.0",
		"total_capacity_gb":         strconv.FormatFloat(c.TotalCapacityGB, 'f', -1, 64),
		"free_capacity_gb":          strconv.FormatFloat(c.FreeCapacityGB, 'f', -1, 64),
		"thin_provisioning_support": strconv.FormatBool(c.ThinProvisioning),
		"multiattach":               "False",
	}
	if c.VolumeBackendName != "" {
		m["volume_backend_name"] = c.VolumeBackendName
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m, c.FreeCapacityGB, nil
}

// schedule picks the backend for a volume: availability zone, capacity
// (thin backends accept any size) and the type's extra specs. Keys with a
// namespace other than "capabilities:" are ignored, as Cinder's
// CapabilitiesFilter does; the backend with the most free space wins.
func (s *Service) schedule(ctx context.Context, specs map[string]string, az string, sizeGiB int64) (*backend, error) {
	var best *backend
	var bestFree float64
	for _, b := range s.backends {
		if az != "" && b.az != az {
			continue
		}
		caps, free, err := b.capabilities(ctx)
		if err != nil {
			s.deps.Logger.Warn("backend capabilities", "backend", b.cfg.Name, "err", err)
			continue
		}
		thin := caps["thin_provisioning_support"] == "true"
		if !thin && free < float64(sizeGiB) {
			continue
		}
		if !satisfies(caps, specs) {
			continue
		}
		if best == nil || free > bestFree {
			best, bestFree = b, free
		}
	}
	if best == nil {
		return nil, errs.E(errs.Invalid, "Could not find any available weighted backend.")
	}
	return best, nil
}

func (s *Service) backendNamed(name string) *backend {
	for _, b := range s.backends {
		if b.cfg.Name == name {
			return b
		}
	}
	return nil
}

// satisfies matches extra specs against capabilities.
func satisfies(caps map[string]string, specs map[string]string) bool {
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

// matchSpec implements Cinder's extra_specs_ops: "<op> value" requirements
// or plain string equality.
func matchSpec(value, req string) bool {
	words := strings.Fields(req)
	if len(words) == 0 {
		return value == req
	}
	op := words[0]
	rest := words[1:]
	num := func(s string) (float64, bool) {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	arg := strings.Join(rest, " ")
	switch op {
	case "<or>":
		cands := []string{}
		for i := 0; i < len(words); i++ {
			if words[i] != "<or>" {
				cands = append(cands, words[i])
			}
		}
		for _, c := range cands {
			if c == value {
				return true
			}
		}
		return false
	case "<in>":
		return strings.Contains(value, arg)
	case "<is>":
		return strings.EqualFold(value, arg) || (strings.EqualFold(arg, "true") && strings.EqualFold(value, "true"))
	case "s==":
		return value == arg
	case "s!=":
		return value != arg
	case "s<":
		return value < arg
	case "s<=":
		return value <= arg
	case "s>":
		return value > arg
	case "s>=":
		return value >= arg
	case "=", "==", "!=", ">=", "<=":
		a, ok1 := num(value)
		b, ok2 := num(arg)
		if !ok1 || !ok2 {
			return false
		}
		switch op {
		case "=", ">=":
			return a >= b
		case "==":
			return a == b
		case "!=":
			return a != b
		case "<=":
			return a <= b
		}
	}
	return value == req
}
