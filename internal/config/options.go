package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Options reads the driver options of one [store:<id>] section for the
// driver that owns them (internal/image/store/drivers). config parses only
// the generic keys of a store; the driver's parse function reads its own
// keys through the getters below. A bad value is recorded as a Problem
// naming the section and key, and reading goes on, so that a file's
// problems are all reported at once. Every value read is kept, canonical and
// with its default filled in, for Resolved: what `config check` prints.
type Options struct {
	// Store is the section being read.
	Store Store

	read     map[string]bool
	resolved map[string]string
	secret   map[string]bool
	problems []Problem
}

// NewOptions returns a reader of s's options.
func NewOptions(s Store) *Options {
	return &Options{Store: s, read: map[string]bool{}, resolved: map[string]string{}, secret: map[string]bool{}}
}

// Section is the name of the section read, "store:<id>".
func (o *Options) Section() string { return "store:" + o.Store.ID }

// Problem records a bad value of key.
func (o *Options) Problem(key, format string, args ...any) {
	o.problems = append(o.problems, Problem{o.Section(), key, fmt.Sprintf(format, args...)})
}

// raw returns key's value as written, marking key as known.
func (o *Options) raw(key string) string {
	o.read[key] = true
	return strings.TrimSpace(o.Store.Options[key])
}

func (o *Options) keep(key, v string) {
	if v != "" {
		o.resolved[key] = v
	}
}

// String returns key's value, or def when it is not set.
func (o *Options) String(key, def string) string {
	v := o.raw(key)
	if v == "" {
		v = def
	}
	o.keep(key, v)
	return v
}

// Secret returns key's value (empty when not set); it is never printed.
func (o *Options) Secret(key string) string {
	o.secret[key] = true
	return o.String(key, "")
}

// Bool returns key's value as a boolean (true/yes/on/1, false/no/off/0),
// or def when it is not set or not a boolean.
func (o *Options) Bool(key string, def bool) bool {
	v := o.raw(key)
	if v == "" {
		return def
	}
	b, err := parseBool(v)
	if err != nil {
		o.Problem(key, "%v", err)
		return def
	}
	o.keep(key, strconv.FormatBool(b))
	return b
}

// Int returns key's value as an integer within [min, max], or def when it
// is not set or not such an integer.
func (o *Options) Int(key string, def, min, max int64) int64 {
	v := o.raw(key)
	if v == "" {
		return def
	}
	n, err := parseInt(v, min, max)
	if err != nil {
		o.Problem(key, "%v", err)
		return def
	}
	o.keep(key, strconv.FormatInt(n, 10))
	return n
}

// HTTPURL returns key's value, which must be an http(s) URL with a host,
// without trailing slashes; def when it is not set.
func (o *Options) HTTPURL(key, def string) string {
	v := strings.TrimRight(o.raw(key), "/")
	if v == "" {
		v = def
	} else if !isHTTPURL(v) {
		o.Problem(key, "%q is not an http(s) URL", v)
	}
	o.keep(key, v)
	return v
}

// Path returns key's value, or def when it is not set, made absolute.
func (o *Options) Path(key, def string) string {
	v := o.raw(key)
	if v == "" {
		v = def
	}
	if v != "" {
		v = absPath(v)
	}
	o.keep(key, v)
	return v
}

// Problems returns the problems found so far.
func (o *Options) Problems() []Problem { return o.problems }

// Unknown returns a warning for every key of the section that no getter
// read: the driver does not know it.
func (o *Options) Unknown() []Problem {
	var out []Problem
	for _, k := range sortedKeys(o.Store.Options) {
		if !o.read[k] {
			out = append(out, Problem{o.Section(), k, "unknown option, ignored"})
		}
	}
	return out
}

// Keys returns the keys read so far, sorted.
func (o *Options) Keys() []string { return slices.Sorted(maps.Keys(o.read)) }

// Resolve replaces the store's options by the values read (canonical, with
// defaults filled in) and marks its secrets, for Print.
func (o *Options) Resolve(s *Store) {
	s.Options = o.resolved
	s.Secret = o.secret
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false)", v)
}

// noMax is parseInt's max when there is none.
const noMax = math.MaxInt64

func parseInt(v string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not an integer", v)
	case n < min:
		return 0, fmt.Errorf("%d is below the minimum %d", n, min)
	case n > max:
		return 0, fmt.Errorf("%d is above the maximum %d", n, max)
	}
	return n, nil
}

func isHTTPURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
