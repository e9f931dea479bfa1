// Package config loads Ashlar's oslo.config-style INI file into typed
// structs, applies the embedded defaults and validates every setting at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// Service names accepted in [DEFAULT] enabled_services.
const (
	ServiceIdentity = "identity"
	ServiceImage    = "image"
	ServiceVolume   = "volume"
)

// Config is the whole resolved configuration.
type Config struct {
	Default  Default
	Database Database
	Identity Identity
	Image    Image
	Volume   Volume
	// Stores holds one entry per [image] enabled_backends item, in that order.
	Stores []Store
	// Backends holds one entry per [volume] enabled_backends item, in that order.
	Backends []Backend
	// Warnings lists settings that were ignored (unknown sections and keys).
	Warnings []Problem
}

// Default is the [DEFAULT] section.
type Default struct {
	StatePath       string
	EnabledServices []string
	// MetricsBind is the admin address serving /metrics; empty disables it.
	MetricsBind string
	// LogFormat is "text" or "json".
	LogFormat string
	Debug     bool
	// ClientSocketTimeout closes a keep-alive connection left idle this
	// long (oslo.service's client_socket_timeout; 0 waits forever).
	ClientSocketTimeout time.Duration
	// ClientHeaderTimeout is how long a client has to send its request
	// headers.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout is how long a client has, after its headers, to
	// send a whole non-data (JSON) body; image data uploads follow the
	// image service's stall rule instead.
	ClientBodyTimeout time.Duration
	// MaxConnectionsPerClient caps the connections one client address
	// (an IPv6 /64) may hold open across all listeners; 0 is no cap.
	MaxConnectionsPerClient int
	// ConnectionLimitExempt lists the client networks the cap does not
	// apply to (this host, a load balancer or reverse proxy in front).
	ConnectionLimitExempt []netip.Prefix
}

// Database is the [database] section.
type Database struct {
	// Connection is an SQLAlchemy-style URL: sqlite:///relative.db,
	// sqlite:////absolute.db or postgresql://user@host:port/db.
	Connection string
}

// Identity is the [identity] section.
type Identity struct {
	Bind      string
	PublicURL string
	Region    string
	// TokenExpiration is how long an issued token is valid.
	TokenExpiration time.Duration
	// AuthURL, when set, switches to external Keystone mode: no identity API
	// is served and tokens are validated against this Keystone.
	AuthURL           string
	Username          string
	Password          string
	ProjectName       string
	UserDomainName    string
	ProjectDomainName string
	// CacheTTL bounds how long an externally validated token stays cached.
	CacheTTL time.Duration
}

// External reports whether identity is delegated to a real Keystone.
func (i Identity) External() bool { return i.AuthURL != "" }

// Image is the [image] section.
type Image struct {
	Bind           string
	PublicURL      string
	DefaultBackend string
	// ImageSizeCap is the largest image accepted, in bytes.
	ImageSizeCap int64
	// UserStorageQuota is the total image bytes a project may store; 0 is unlimited.
	UserStorageQuota int64
	// HashingAlgorithm names the os_hash_algo (sha512 by default).
	HashingAlgorithm string
	// ImportMethods lists the enabled interoperable import methods.
	ImportMethods []string
	// AllowedImportHosts limits web-download to these host[:port] entries.
	AllowedImportHosts []string
	// StagingDir holds os_glance_staging_store data.
	StagingDir string
}

// Store is one [store:<id>] section.
type Store struct {
	ID          string
	Type        string
	Description string
	// Options holds the driver's own keys (filesystem_store_datadir, s3_store_host, ...).
	Options map[string]string
}

// Volume is the [volume] section.
type Volume struct {
	Bind      string
	PublicURL string
	// GlanceAPIServers overrides the image endpoint found in the catalog.
	GlanceAPIServers  []string
	DefaultVolumeType string
	// DefaultAvailabilityZone is reported for volumes and backends.
	DefaultAvailabilityZone string
}

// Backend is one [backend:<name>] section.
type Backend struct {
	Name              string
	VolumeDriver      string
	VolumeBackendName string
	Options           map[string]string
}

// Problem is one invalid or ignored setting.
type Problem struct {
	Section, Key, Msg string
}

func (p Problem) String() string {
	if p.Key == "" {
		return fmt.Sprintf("[%s]: %s", p.Section, p.Msg)
	}
	return fmt.Sprintf("[%s] %s: %s", p.Section, p.Key, p.Msg)
}

// ValidationError lists every invalid setting found.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// StoreTypes maps each image store type to the driver option keys it accepts
// (besides store_description). The http type is always read-only.
var StoreTypes = map[string][]string{
	"file": {"filesystem_store_datadir", "filesystem_thin_provisioning"},
	"s3": {"s3_store_host", "s3_store_bucket", "s3_store_access_key", "s3_store_secret_key",
		"s3_store_create_bucket_on_put", "s3_store_region", "s3_store_large_object_chunk_size",
		"s3_store_thread_pools"},
	"http": {"http_store_base_url"},
}

// VolumeDrivers maps each volume driver to the option keys it accepts
// (besides volume_driver and volume_backend_name).
var VolumeDrivers = map[string][]string{
	"file": {"volumes_dir", "total_capacity_gb", "availability_zone"},
}

// keys of the fixed sections: name -> known keys.
var sectionKeys = map[string][]string{
	ini.DefaultSection: {"state_path", "enabled_services", "metrics_bind", "log_format", "debug",
		"client_socket_timeout", "client_header_timeout", "client_body_timeout",
		"max_connections_per_client", "connection_limit_exempt"},
	"database": {"connection"},
	"identity": {"bind", "public_url", "region", "token_expiration", "auth_url", "username",
		"password", "project_name", "user_domain_name", "project_domain_name", "cache_ttl"},
	"image": {"bind", "public_url", "enabled_backends", "default_backend", "image_size_cap",
		"user_storage_quota", "hashing_algorithm", "enabled_import_methods",
		"allowed_import_hosts", "staging_dir"},
	"volume": {"bind", "public_url", "enabled_backends", "glance_api_servers",
		"default_volume_type", "default_availability_zone"},
}

// Load reads the INI file at path (or, when path is "", only the embedded
// defaults), applies statePath when non-empty, and validates the result.
func Load(path, statePath string) (*Config, error) {
	var f *ini.File
	var err error
	opts := ini.LoadOptions{AllowPythonMultilineValues: true, ChildSectionDelimiter: "\x00",
		SpaceBeforeInlineComment: true}
	if path == "" {
		f = ini.Empty(opts)
	} else if f, err = ini.LoadSources(opts, path); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return parse(f, statePath)
}

// Parse is Load for INI text held in memory.
func Parse(text, statePath string) (*Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{AllowPythonMultilineValues: true,
		ChildSectionDelimiter: "\x00", SpaceBeforeInlineComment: true}, []byte(text))
	if err != nil {
		return nil, err
	}
	return parse(f, statePath)
}

type parser struct {
	f        *ini.File
	problems []Problem
	warnings []Problem
}

func (p *parser) bad(section, key, format string, args ...any) {
	p.problems = append(p.problems, Problem{section, key, fmt.Sprintf(format, args...)})
}

func (p *parser) str(section, key, def string) string {
	s, err := p.f.GetSection(section)
	if err != nil || !s.HasKey(key) {
		return def
	}
	return strings.TrimSpace(s.Key(key).String())
}

func (p *parser) list(section, key string, def []string) []string {
	s, err := p.f.GetSection(section)
	if err != nil || !s.HasKey(key) {
		return def
	}
	var out []string
	for _, v := range strings.Split(s.Key(key).String(), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p *parser) boolean(section, key string, def bool) bool {
	v := p.str(section, key, "")
	if v == "" {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true
	case "false", "no", "off", "0":
		return false
	}
	p.bad(section, key, "%q is not a boolean (true/false)", v)
	return def
}

func (p *parser) integer(section, key string, def int64, min int64) int64 {
	v := p.str(section, key, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.bad(section, key, "%q is not an integer", v)
		return def
	}
	if n < min {
		p.bad(section, key, "%d is below the minimum %d", n, min)
		return def
	}
	return n
}

// seconds reads an integer number of seconds, at least 1.
func (p *parser) seconds(section, key string, def time.Duration) time.Duration {
	return p.secondsMin(section, key, def, 1)
}

// secondsMin reads an integer number of seconds, at least min.
func (p *parser) secondsMin(section, key string, def time.Duration, min int64) time.Duration {
	return time.Duration(p.integer(section, key, int64(def/time.Second), min)) * time.Second
}

// prefixes reads a list of networks (CIDR) or single addresses.
func (p *parser) prefixes(section, key string, def []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range p.list(section, key, def) {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			addr, aerr := netip.ParseAddr(v)
			if aerr != nil {
				p.bad(section, key, "%q is not an IP address or network (CIDR)", v)
				continue
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out
}

func (p *parser) bind(section, key, def string) string {
	v := p.str(section, key, def)
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		p.bad(section, key, "%q is not a host:port address", v)
	}
	return v
}

func (p *parser) url(section, key, def string) string {
	v := strings.TrimRight(p.str(section, key, def), "/")
	if v == "" {
		return v
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.bad(section, key, "%q is not an http(s) URL", v)
	}
	return v
}

// checkKeys warns about keys a section does not know.
func (p *parser) checkKeys(section string, known []string) {
	s, err := p.f.GetSection(section)
	if err != nil {
		return
	}
	for _, k := range s.Keys() {
		if !contains(known, k.Name()) {
			p.warnings = append(p.warnings, Problem{section, k.Name(), "unknown option, ignored"})
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func parse(f *ini.File, statePathOverride string) (*Config, error) {
	p := &parser{f: f}
	c := &Config{}
	D := ini.DefaultSection

	c.Default.StatePath = p.str(D, "state_path", "./data")
	if statePathOverride != "" {
		c.Default.StatePath = statePathOverride
	}
	// Absolute, so that store locations (file:///...) and generated files
	// do not depend on the working directory.
	c.Default.StatePath = absPath(c.Default.StatePath)
	state := c.Default.StatePath
	c.Default.EnabledServices = p.list(D, "enabled_services",
		[]string{ServiceIdentity, ServiceImage, ServiceVolume})
	for _, s := range c.Default.EnabledServices {
		if s != ServiceIdentity && s != ServiceImage && s != ServiceVolume {
			p.bad(D, "enabled_services", "unknown service %q (want identity, image, volume)", s)
		}
	}
	c.Default.MetricsBind = p.str(D, "metrics_bind", "127.0.0.1:9180")
	if c.Default.MetricsBind != "" {
		c.Default.MetricsBind = p.bind(D, "metrics_bind", c.Default.MetricsBind)
	}
	c.Default.LogFormat = p.str(D, "log_format", "text")
	if c.Default.LogFormat != "text" && c.Default.LogFormat != "json" {
		p.bad(D, "log_format", "%q is not one of text, json", c.Default.LogFormat)
	}
	c.Default.Debug = p.boolean(D, "debug", false)
	c.Default.ClientSocketTimeout = p.secondsMin(D, "client_socket_timeout", 900*time.Second, 0)
	c.Default.ClientHeaderTimeout = p.seconds(D, "client_header_timeout", 30*time.Second)
	c.Default.ClientBodyTimeout = p.seconds(D, "client_body_timeout", 60*time.Second)
	c.Default.MaxConnectionsPerClient = int(p.integer(D, "max_connections_per_client", 256, 0))
	c.Default.ConnectionLimitExempt = p.prefixes(D, "connection_limit_exempt", []string{"127.0.0.0/8", "::1/128"})

	c.Database.Connection = p.str("database", "connection", "sqlite:///"+filepath.Join(state, "ashlar.db"))
	if _, _, err := ParseConnection(c.Database.Connection); err != nil {
		p.bad("database", "connection", "%v", err)
	}

	c.Identity.Bind = p.bind("identity", "bind", "127.0.0.1:5000")
	c.Identity.PublicURL = p.url("identity", "public_url", "http://"+c.Identity.Bind)
	c.Identity.Region = p.str("identity", "region", "RegionOne")
	c.Identity.TokenExpiration = p.seconds("identity", "token_expiration", time.Hour)
	c.Identity.AuthURL = p.url("identity", "auth_url", "")
	c.Identity.Username = p.str("identity", "username", "")
	c.Identity.Password = p.str("identity", "password", "")
	c.Identity.ProjectName = p.str("identity", "project_name", "service")
	c.Identity.UserDomainName = p.str("identity", "user_domain_name", "Default")
	c.Identity.ProjectDomainName = p.str("identity", "project_domain_name", "Default")
	c.Identity.CacheTTL = p.seconds("identity", "cache_ttl", 5*time.Minute)
	if c.Identity.External() {
		if c.Identity.Username == "" || c.Identity.Password == "" {
			p.bad("identity", "auth_url", "external Keystone mode needs username and password")
		}
		if contains(c.Default.EnabledServices, ServiceIdentity) {
			c.Default.EnabledServices = remove(c.Default.EnabledServices, ServiceIdentity)
		}
	}

	c.Image.Bind = p.bind("image", "bind", "127.0.0.1:9292")
	c.Image.PublicURL = p.url("image", "public_url", "http://"+c.Image.Bind)
	c.Image.ImageSizeCap = p.integer("image", "image_size_cap", 1<<40, 1)
	c.Image.UserStorageQuota = p.integer("image", "user_storage_quota", 0, 0)
	c.Image.HashingAlgorithm = p.str("image", "hashing_algorithm", "sha512")
	switch c.Image.HashingAlgorithm {
	case "sha256", "sha384", "sha512", "md5", "sha1":
	default:
		p.bad("image", "hashing_algorithm", "%q is not supported", c.Image.HashingAlgorithm)
	}
	c.Image.ImportMethods = p.list("image", "enabled_import_methods",
		[]string{"glance-direct", "web-download", "copy-image"})
	c.Image.AllowedImportHosts = p.list("image", "allowed_import_hosts", nil)
	c.Image.StagingDir = p.str("image", "staging_dir", filepath.Join(state, "staging"))
	p.parseStores(c, state)

	c.Volume.Bind = p.bind("volume", "bind", "127.0.0.1:8776")
	c.Volume.PublicURL = p.url("volume", "public_url", "http://"+c.Volume.Bind)
	for _, u := range p.list("volume", "glance_api_servers", nil) {
		c.Volume.GlanceAPIServers = append(c.Volume.GlanceAPIServers, strings.TrimRight(u, "/"))
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			p.bad("volume", "glance_api_servers", "%q is not a URL", u)
		}
	}
	c.Volume.DefaultVolumeType = p.str("volume", "default_volume_type", "__DEFAULT__")
	c.Volume.DefaultAvailabilityZone = p.str("volume", "default_availability_zone", "nova")
	p.parseBackends(c, state)

	for name, keys := range sectionKeys {
		p.checkKeys(name, keys)
	}
	for _, s := range f.Sections() {
		name := s.Name()
		if _, ok := sectionKeys[name]; ok || strings.HasPrefix(name, "store:") || strings.HasPrefix(name, "backend:") {
			continue
		}
		p.warnings = append(p.warnings, Problem{name, "", "unknown section, ignored"})
	}
	c.Warnings = p.warnings
	if len(p.problems) > 0 {
		return c, &ValidationError{Problems: p.problems}
	}
	return c, nil
}

func remove(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// defaultStores are used when [image] enabled_backends is not set.
var defaultStores = []Store{
	{ID: "fast", Type: "file", Description: "Fast store with short transfer time"},
	{ID: "cheap", Type: "file", Description: "Inexpensive store for seldom used images"},
	{ID: "reliable", Type: "file", Description: "Reliable store with redundant copies"},
}

func (p *parser) parseStores(c *Config, state string) {
	const S = "image"
	items := p.list(S, "enabled_backends", nil)
	if items == nil {
		for _, d := range defaultStores {
			st := d
			st.Options = map[string]string{"filesystem_store_datadir": filepath.Join(state, "images", d.ID)}
			if sec, err := p.f.GetSection("store:" + d.ID); err == nil {
				st.Description = p.str(sec.Name(), "store_description", st.Description)
				st.Options["filesystem_store_datadir"] = p.str(sec.Name(), "filesystem_store_datadir", st.Options["filesystem_store_datadir"])
				if v := p.str(sec.Name(), "filesystem_thin_provisioning", ""); v != "" {
					st.Options["filesystem_thin_provisioning"] = v
					p.validateStore(sec.Name(), &st, state)
				}
			}
			c.Stores = append(c.Stores, st)
		}
		c.Image.DefaultBackend = p.str(S, "default_backend", "fast")
	} else {
		seen := map[string]bool{}
		for _, item := range items {
			id, typ, ok := strings.Cut(item, ":")
			id, typ = strings.TrimSpace(id), strings.TrimSpace(typ)
			switch {
			case !ok || id == "" || typ == "":
				p.bad(S, "enabled_backends", "%q is not of the form <store id>:<type>", item)
				continue
			case strings.HasPrefix(id, "os_glance_"):
				p.bad(S, "enabled_backends", "store id %q: the os_glance_ prefix is reserved", id)
				continue
			case seen[id]:
				p.bad(S, "enabled_backends", "store id %q is listed twice", id)
				continue
			}
			seen[id] = true
			known, ok := StoreTypes[typ]
			if !ok {
				p.bad(S, "enabled_backends", "store %q has unknown type %q (want %s)", id, typ, strings.Join(sortedKeys(StoreTypes), ", "))
				continue
			}
			sec := "store:" + id
			st := Store{ID: id, Type: typ, Options: map[string]string{}}
			st.Description = p.str(sec, "store_description", "")
			for _, k := range known {
				if v := p.str(sec, k, ""); v != "" {
					st.Options[k] = v
				}
			}
			p.checkKeys(sec, append([]string{"store_description"}, known...))
			p.validateStore(sec, &st, state)
			c.Stores = append(c.Stores, st)
		}
		c.Image.DefaultBackend = p.str(S, "default_backend", "")
		if c.Image.DefaultBackend == "" && len(c.Stores) > 0 {
			p.bad(S, "default_backend", "must be set when enabled_backends is set")
		}
	}
	if c.Image.DefaultBackend != "" {
		found := false
		for _, st := range c.Stores {
			if st.ID == c.Image.DefaultBackend {
				found = true
				if st.Type == "http" {
					p.bad(S, "default_backend", "store %q is read-only and cannot be the default", st.ID)
				}
			}
		}
		if !found {
			p.bad(S, "default_backend", "%q is not one of enabled_backends", c.Image.DefaultBackend)
		}
	}
	for _, s := range p.f.Sections() {
		if id, ok := strings.CutPrefix(s.Name(), "store:"); ok {
			if !c.hasStore(id) {
				p.warnings = append(p.warnings, Problem{s.Name(), "", "store is not in [image] enabled_backends, ignored"})
			}
		}
	}
}

func (c *Config) hasStore(id string) bool {
	for _, s := range c.Stores {
		if s.ID == id {
			return true
		}
	}
	return false
}

func (p *parser) validateStore(sec string, st *Store, state string) {
	switch st.Type {
	case "file":
		if st.Options["filesystem_store_datadir"] == "" {
			st.Options["filesystem_store_datadir"] = filepath.Join(state, "images", st.ID)
		}
		st.Options["filesystem_store_datadir"] = absPath(st.Options["filesystem_store_datadir"])
		if v := st.Options["filesystem_thin_provisioning"]; v != "" {
			st.Options["filesystem_thin_provisioning"] = strconv.FormatBool(p.boolean(sec, "filesystem_thin_provisioning", false))
		}
	case "s3":
		for _, k := range []string{"s3_store_host", "s3_store_bucket", "s3_store_access_key", "s3_store_secret_key"} {
			if st.Options[k] == "" {
				p.bad(sec, k, "required for an s3 store")
			}
		}
		if v := st.Options["s3_store_create_bucket_on_put"]; v != "" {
			p.boolean(sec, "s3_store_create_bucket_on_put", false)
		}
		if h := st.Options["s3_store_host"]; h != "" {
			if u, err := url.Parse(h); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				p.bad(sec, "s3_store_host", "%q is not an http(s) URL", h)
			}
		}
	case "http":
		if v := st.Options["http_store_base_url"]; v != "" {
			if u, err := url.Parse(v); err != nil || u.Host == "" {
				p.bad(sec, "http_store_base_url", "%q is not a URL", v)
			}
		}
	}
}

// defaultBackend is used when [volume] enabled_backends is not set.
func (p *parser) parseBackends(c *Config, state string) {
	const S = "volume"
	names := p.list(S, "enabled_backends", []string{"local"})
	for _, name := range names {
		sec := "backend:" + name
		b := Backend{Name: name, Options: map[string]string{}}
		b.VolumeDriver = p.str(sec, "volume_driver", "file")
		b.VolumeBackendName = p.str(sec, "volume_backend_name", name)
		known, ok := VolumeDrivers[b.VolumeDriver]
		if !ok {
			p.bad(sec, "volume_driver", "unknown volume driver %q (want %s)", b.VolumeDriver, strings.Join(sortedKeys(VolumeDrivers), ", "))
		}
		for _, k := range known {
			if v := p.str(sec, k, ""); v != "" {
				b.Options[k] = v
			}
		}
		if b.VolumeDriver == "file" && b.Options["volumes_dir"] == "" {
			b.Options["volumes_dir"] = filepath.Join(state, "volumes", name)
		}
		if b.Options["volumes_dir"] != "" {
			b.Options["volumes_dir"] = absPath(b.Options["volumes_dir"])
		}
		if v := b.Options["total_capacity_gb"]; v != "" {
			p.integer(sec, "total_capacity_gb", 0, 1)
		}
		p.checkKeys(sec, append([]string{"volume_driver", "volume_backend_name"}, known...))
		c.Backends = append(c.Backends, b)
	}
	for _, s := range p.f.Sections() {
		if name, ok := strings.CutPrefix(s.Name(), "backend:"); ok && !contains(names, name) {
			p.warnings = append(p.warnings, Problem{s.Name(), "", "backend is not in [volume] enabled_backends, ignored"})
		}
	}
}

// absPath makes p absolute against the working directory at start-up.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Engine names returned by ParseConnection.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// ParseConnection splits a [database] connection URL into an engine and the
// DSN its Go driver takes.
func ParseConnection(conn string) (engine, dsn string, err error) {
	scheme, rest, ok := strings.Cut(conn, "://")
	if !ok {
		return "", "", errors.New("connection must be a URL like sqlite:///path.db or postgresql://host/db")
	}
	scheme, _, _ = strings.Cut(scheme, "+") // postgresql+psycopg2 -> postgresql
	switch scheme {
	case "sqlite":
		// SQLAlchemy: sqlite:///rel.db is relative, sqlite:////abs.db absolute.
		path := strings.TrimPrefix(rest, "/")
		if path == "" {
			return "", "", errors.New("sqlite connection needs a file path")
		}
		return EngineSQLite, path, nil
	case "postgresql", "postgres":
		return EnginePostgres, "postgres://" + rest, nil
	}
	return "", "", fmt.Errorf("unsupported database scheme %q (want sqlite or postgresql)", scheme)
}

// Enabled reports whether the named service runs in this process.
func (c *Config) Enabled(service string) bool { return contains(c.Default.EnabledServices, service) }

// Store returns the store with the given id.
func (c *Config) Store(id string) (Store, bool) {
	for _, s := range c.Stores {
		if s.ID == id {
			return s, true
		}
	}
	return Store{}, false
}
