package identity

import (
	"net/url"
	"strings"
)

// listFilter is one list filter from a query string, as Keystone reads it
// (keystone/server/flask/common.py build_driver_hints): "name=x" is exact;
// "name__contains=x", "__startswith", "__endswith" are inexact and
// case-sensitive, and an "i" before the comparator ("name__icontains")
// makes them case-insensitive. Only the attributes a list names are
// filters; other parameters are ignored, and so are inexact filters with a
// comparator Keystone does not know (they keep every item that has the
// attribute).
type listFilter struct {
	attr, value string
	comparator  string // "equals", "contains", "startswith", "endswith" or unknown
	insensitive bool
}

// parseFilters reads the filters of q on the attributes supported.
func parseFilters(q url.Values, supported []string) []listFilter {
	var out []listFilter
	for key, values := range q {
		for _, attr := range supported {
			f := listFilter{attr: attr, comparator: "equals"}
			if key != attr {
				cmp, ok := strings.CutPrefix(key, attr+"__")
				if !ok {
					continue
				}
				f.comparator, f.insensitive = cmp, false
				if rest, ok := strings.CutPrefix(cmp, "i"); ok {
					f.comparator, f.insensitive = rest, true
				}
			}
			for _, v := range values {
				f.value = v
				out = append(out, f)
			}
			break
		}
	}
	return out
}

// match reports whether an attribute value (a string, a bool, or nil when
// the item has no such attribute) passes f.
func (f listFilter) match(v any) bool {
	if f.comparator == "equals" {
		switch x := v.(type) {
		case bool:
			return x == attrAsBoolean(f.value)
		case string:
			return x == f.value
		}
		return false
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	want := f.value
	if f.insensitive {
		s, want = strings.ToLower(s), strings.ToLower(want)
	}
	switch f.comparator {
	case "contains":
		return strings.Contains(s, want)
	case "startswith":
		return strings.HasPrefix(s, want)
	case "endswith":
		return strings.HasSuffix(s, want)
	}
	return true // a comparator Keystone does not know is ignored
}

// matchAll reports whether the item whose attributes attr returns passes
// every filter.
func matchAll(fs []listFilter, attr func(string) any) bool {
	for _, f := range fs {
		if !f.match(attr(f.attr)) {
			return false
		}
	}
	return true
}

// attrAsBoolean reads a boolean query value as Keystone does: false only
// for the spellings oslo's strutils takes for false.
func attrAsBoolean(v string) bool {
	switch strings.ToLower(v) {
	case "0", "f", "false", "off", "n", "no":
		return false
	}
	return true
}
