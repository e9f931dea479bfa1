// Package config loads Ashlar's oslo.config-style INI file into typed
// structs, applies the embedded defaults and validates every setting at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
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
	// Dashboard is the web UI's section.
	Dashboard Dashboard
	// Stores holds one entry per [image] enabled_backends item, in that order.
	Stores []Store
	// Backends holds one entry per [volume] enabled_backends item, in that order.
	Backends []Backend
	// Backup is the [backup] section: where volume backups are kept.
	Backup Backup
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
	// TaskLease is how long a node's claim on background work lasts
	// without renewal: a dead node's work is taken over within two leases.
	TaskLease time.Duration
	// TaskWorkers bounds the background tasks one node runs at once.
	TaskWorkers int
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
	// SelfURL is the node's advertised address (Glance's
	// worker_self_reference_url): this node's own image API, reachable
	// from its peers, stable across restarts. It names the node in the
	// nodes table and is the host of work that needs data only this node
	// has (a node-local staging directory).
	SelfURL string
	// ProgressStallAfter is how long running work may move no bytes
	// before it is flagged stalled (0: never).
	ProgressStallAfter time.Duration
}

// Dashboard is the [dashboard] section: the web UI for stores, volume
// types and transfers (docs/dashboard.md).
type Dashboard struct {
	// Bind is the dashboard's address; empty disables it.
	Bind string
	// SessionTTL bounds a login session (and never outlives its token).
	SessionTTL time.Duration
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
	// TokenKeyRotation is how old the signing key may grow before a node
	// rotates it (0: only `ashlar token rotate` rotates).
	TokenKeyRotation time.Duration
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
	// StagingDir holds os_glance_staging_store data when the staging
	// store is a file store with no filesystem_store_datadir of its own.
	StagingDir string
	// Staging is the os_glance_staging_store: a file store by default;
	// [image] staging_store names another type, whose options are in
	// [store:os_glance_staging_store].
	Staging Store
	// StagingShared says every node sees the same staging store (an
	// S3 bucket, a directory on a shared mount); when false, data staged
	// on one node is imported by that node (see docs/cluster.md).
	StagingShared bool
	// ShowImageDirectURL shows an image's first location as direct_url
	// (Glance's show_image_direct_url) to callers that may read locations.
	ShowImageDirectURL bool
	// ShowMultipleLocations shows an image's locations (Glance's
	// show_multiple_locations) to callers that may read locations.
	ShowMultipleLocations bool
	// StoreCheckInterval is how often each store's health is checked
	// (for stores detail, the dashboard and store drift); 0 disables.
	StoreCheckInterval time.Duration
}

// Store is one [store:<id>] section. config reads only the generic keys;
// the store's driver reads and checks the others (Options), see Check and
// internal/image/store/drivers.
type Store struct {
	ID          string
	Type        string
	Description string
	// Options holds the section's other keys: as written, until the
	// store's driver has read them (drivers.Check); then the values it
	// read, canonical and with defaults filled in.
	Options map[string]string
	// Secret marks the Options that are credentials, as the driver
	// declares them; nil until a driver has read the options, and Print
	// masks every option of such a store.
	Secret map[string]bool
	// StateDir is <state_path>/images/<id>: where a driver keeps the
	// store's data when its section names no place (the file driver's
	// default filesystem_store_datadir).
	StateDir string
}

// StagingStoreID is the id of the hidden store that holds staged import
// data, and the name of its section ([store:os_glance_staging_store]).
const StagingStoreID = "os_glance_staging_store"

// Volume is the [volume] section.
type Volume struct {
	Bind      string
	PublicURL string
	// GlanceAPIServers overrides the image endpoint found in the catalog.
	GlanceAPIServers  []string
	DefaultVolumeType string
	// DefaultAvailabilityZone is reported for volumes and backends.
	DefaultAvailabilityZone string
	// EnableForceUpload lets os-volume_upload_image's force upload an
	// in-use volume (Cinder's enable_force_upload); otherwise force is
	// ignored.
	EnableForceUpload bool
	// Quota holds the default quotas (Cinder's quota_* options), used
	// where neither the project nor the "default" quota class sets one.
	Quota VolumeQuota
}

// VolumeQuota is the default quota of every project, by Cinder's option
// names; -1 is unlimited.
type VolumeQuota struct {
	Volumes, Snapshots, Gigabytes, Backups, BackupGigabytes, Groups int64
	// PerVolumeSizeLimit is per_volume_size_limit: the largest volume, GiB.
	PerVolumeSizeLimit int64
}

// Backend is one [backend:<name>] section.
type Backend struct {
	Name              string
	VolumeDriver      string
	VolumeBackendName string
	Options           map[string]string
}

// Backup is the [backup] section. config reads the generic keys; the
// driver's own keys (Options) are read by its package (see
// internal/volume/backup/drivers).
type Backup struct {
	// Driver is backup_driver: "posix" (default) or "s3" (Cinder's class
	// paths of those drivers are accepted too).
	Driver string
	// Container is backup_container: the default container (the first
	// part of every object key) of new backups.
	Container string
	// Compression is backup_compression_algorithm: "zstd" or "none".
	Compression string
	// Workers is backup_native_threads_pool_size: chunks in flight per
	// backup or restore.
	Workers int
	// Options holds the driver's keys as written.
	Options map[string]string
}

// BackupDrivers maps each backup driver to the [backup] keys it owns.
var BackupDrivers = map[string][]string{
	"posix": {"backup_posix_path", "backup_file_size"},
	"s3": {"backup_s3_endpoint_url", "backup_s3_store_bucket", "backup_s3_store_access_key", "backup_s3_store_secret_key",
		"backup_s3_region", "backup_s3_object_size", "backup_s3_retry_max_attempts", "backup_s3_timeout"},
}

// backupDriverAliases are Cinder's backup_driver values for our drivers.
var backupDriverAliases = map[string]string{
	"cinder.backup.drivers.posix.PosixBackupDriver": "posix",
	"cinder.backup.drivers.nfs.NFSBackupDriver":     "posix",
	"cinder.backup.drivers.s3.S3BackupDriver":       "s3",
}

// parseBackup reads [backup].
func (p *parser) parseBackup(c *Config, state string) {
	const S = "backup"
	b := Backup{Options: map[string]string{}}
	b.Driver = p.str(S, "backup_driver", "posix")
	if a, ok := backupDriverAliases[b.Driver]; ok {
		b.Driver = a
	}
	known, ok := BackupDrivers[b.Driver]
	if !ok {
		p.bad(S, "backup_driver", "unknown backup driver %q (want %s)", b.Driver, strings.Join(sortedKeys(BackupDrivers), ", "))
	}
	b.Container = p.str(S, "backup_container", "volumebackups")
	b.Compression = p.str(S, "backup_compression_algorithm", "zstd")
	if b.Compression != "zstd" && b.Compression != "none" {
		p.bad(S, "backup_compression_algorithm", "%q is not zstd or none", b.Compression)
	}
	b.Workers = int(p.integer(S, "backup_native_threads_pool_size", 4, 1))
	for _, k := range known {
		if v := p.str(S, k, ""); v != "" {
			b.Options[k] = v
		}
	}
	if b.Driver == "posix" {
		if b.Options["backup_posix_path"] == "" {
			b.Options["backup_posix_path"] = filepath.Join(state, "backups")
		}
		b.Options["backup_posix_path"] = absPath(b.Options["backup_posix_path"])
	}
	p.checkKeys(S, append([]string{"backup_driver", "backup_container", "backup_compression_algorithm",
		"backup_native_threads_pool_size"}, known...))
	c.Backup = b
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

// VolumeDrivers maps each volume driver to the option keys it accepts
// (besides volume_driver and volume_backend_name).
var VolumeDrivers = map[string][]string{
	"file": {"volumes_dir", "total_capacity_gb", "availability_zone", "nfs_share", "nfs_mount_options"},
	"rbd": {"rbd_pool", "rbd_user", "rbd_ceph_conf", "rbd_cluster_name", "rbd_secret_uuid",
		"rbd_flatten_volume_from_snapshot", "rbd_max_clone_depth", "rados_connect_timeout", "availability_zone"},
}

// keys of the fixed sections: name -> known keys.
var sectionKeys = map[string][]string{
	ini.DefaultSection: {"state_path", "enabled_services", "metrics_bind", "log_format", "debug",
		"task_lease", "task_workers", "worker_self_reference_url",
		"client_socket_timeout", "client_header_timeout", "client_body_timeout",
		"max_connections_per_client", "connection_limit_exempt", "progress_stall_after"},
	"dashboard": {"bind", "session_ttl"},
	"database":  {"connection"},
	"identity": {"bind", "public_url", "region", "token_expiration", "token_key_rotation", "auth_url", "username",
		"password", "project_name", "user_domain_name", "project_domain_name", "cache_ttl"},
	"image": {"bind", "public_url", "enabled_backends", "default_backend", "image_size_cap",
		"user_storage_quota", "hashing_algorithm", "enabled_import_methods",
		"allowed_import_hosts", "staging_dir", "staging_store", "staging_shared", "show_image_direct_url",
		"show_multiple_locations", "store_check_interval"},
	"volume": {"bind", "public_url", "enabled_backends", "glance_api_servers",
		"default_volume_type", "default_availability_zone", "quota_volumes", "quota_snapshots",
		"quota_gigabytes", "quota_backups", "quota_backup_gigabytes", "quota_groups", "per_volume_size_limit", "enable_force_upload"},
}

// A Check validates what config leaves to others, the options of image
// store drivers (internal/image/store/drivers.Check): it returns problems
// and warnings, each naming its section and key, and may resolve what it
// checks (fill in defaults). Load and Parse report its problems together
// with their own, so every problem of a file is reported at once.
type Check func(c *Config) (problems, warnings []Problem)

// Load reads the INI file at path (or, when path is "", only the embedded
// defaults), applies statePath when non-empty, and validates the result,
// running checks after its own validation.
func Load(path, statePath string, checks ...Check) (*Config, error) {
	var f *ini.File
	var err error
	opts := ini.LoadOptions{AllowPythonMultilineValues: true, ChildSectionDelimiter: "\x00",
		SpaceBeforeInlineComment: true}
	if path == "" {
		f = ini.Empty(opts)
	} else if f, err = ini.LoadSources(opts, path); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return parse(f, statePath, checks)
}

// Parse is Load for INI text held in memory.
func Parse(text, statePath string, checks ...Check) (*Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{AllowPythonMultilineValues: true,
		ChildSectionDelimiter: "\x00", SpaceBeforeInlineComment: true}, []byte(text))
	if err != nil {
		return nil, err
	}
	return parse(f, statePath, checks)
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
	b, err := parseBool(v)
	if err != nil {
		p.bad(section, key, "%v", err)
		return def
	}
	return b
}

func (p *parser) integer(section, key string, def int64, min int64) int64 {
	v := p.str(section, key, "")
	if v == "" {
		return def
	}
	n, err := parseInt(v, min, noMax)
	if err != nil {
		p.bad(section, key, "%v", err)
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
	if !isHTTPURL(v) {
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

func parse(f *ini.File, statePathOverride string, checks []Check) (*Config, error) {
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
	c.Default.TaskLease = p.seconds(D, "task_lease", 30*time.Second)
	c.Default.TaskWorkers = int(p.integer(D, "task_workers", 8, 1))
	c.Default.ClientSocketTimeout = p.secondsMin(D, "client_socket_timeout", 900*time.Second, 0)
	c.Default.ClientHeaderTimeout = p.seconds(D, "client_header_timeout", 30*time.Second)
	c.Default.ClientBodyTimeout = p.seconds(D, "client_body_timeout", 60*time.Second)
	c.Default.MaxConnectionsPerClient = int(p.integer(D, "max_connections_per_client", 256, 0))
	c.Default.ConnectionLimitExempt = p.prefixes(D, "connection_limit_exempt", []string{"127.0.0.0/8", "::1/128"})
	c.Default.ProgressStallAfter = p.secondsMin(D, "progress_stall_after", 60*time.Second, 0)
	c.Dashboard.Bind = p.str("dashboard", "bind", "127.0.0.1:8000")
	if c.Dashboard.Bind != "" {
		c.Dashboard.Bind = p.bind("dashboard", "bind", c.Dashboard.Bind)
	}
	c.Dashboard.SessionTTL = p.seconds("dashboard", "session_ttl", 8*time.Hour)

	c.Database.Connection = p.str("database", "connection", "sqlite:///"+filepath.Join(state, "ashlar.db"))
	if _, _, err := ParseConnection(c.Database.Connection); err != nil {
		p.bad("database", "connection", "%v", err)
	}

	c.Identity.Bind = p.bind("identity", "bind", "127.0.0.1:5000")
	c.Identity.PublicURL = p.url("identity", "public_url", "http://"+c.Identity.Bind)
	c.Identity.Region = p.str("identity", "region", "RegionOne")
	c.Identity.TokenExpiration = p.seconds("identity", "token_expiration", time.Hour)
	c.Identity.TokenKeyRotation = p.secondsMin("identity", "token_key_rotation", 0, 0)
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
	c.Default.SelfURL = p.url(D, "worker_self_reference_url", selfURL(c.Image.Bind))
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
	c.Image.StagingDir = absPath(p.str("image", "staging_dir", filepath.Join(state, "staging")))
	c.Image.Staging = Store{ID: StagingStoreID, Type: p.str("image", "staging_store", "file"),
		Options: p.options("store:"+StagingStoreID, "store_description"), StateDir: c.Image.StagingDir}
	// A file staging store is a directory of this node unless the
	// operator says it is a shared mount; any other type is a service
	// every node reaches.
	c.Image.StagingShared = p.boolean("image", "staging_shared", c.Image.Staging.Type != "file")
	// Both expose where image data lives (server paths, buckets): off
	// unless the operator turns them on, as in Glance.
	c.Image.ShowImageDirectURL = p.boolean("image", "show_image_direct_url", false)
	c.Image.ShowMultipleLocations = p.boolean("image", "show_multiple_locations", false)
	c.Image.StoreCheckInterval = p.secondsMin("image", "store_check_interval", 60*time.Second, 0)
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
	c.Volume.EnableForceUpload = p.boolean("volume", "enable_force_upload", false)
	q := &c.Volume.Quota
	q.Volumes = p.integer("volume", "quota_volumes", 10, -1)
	q.Snapshots = p.integer("volume", "quota_snapshots", 10, -1)
	q.Gigabytes = p.integer("volume", "quota_gigabytes", 1000, -1)
	q.Backups = p.integer("volume", "quota_backups", 10, -1)
	q.BackupGigabytes = p.integer("volume", "quota_backup_gigabytes", 1000, -1)
	q.Groups = p.integer("volume", "quota_groups", 10, -1)
	q.PerVolumeSizeLimit = p.integer("volume", "per_volume_size_limit", -1, -1)
	p.parseBackends(c, state)
	p.parseBackup(c, state)

	for _, check := range checks {
		problems, warnings := check(c)
		p.problems = append(p.problems, problems...)
		p.warnings = append(p.warnings, warnings...)
	}
	for name, keys := range sectionKeys {
		p.checkKeys(name, keys)
	}
	for _, s := range f.Sections() {
		name := s.Name()
		if _, ok := sectionKeys[name]; ok || name == "backup" || strings.HasPrefix(name, "store:") || strings.HasPrefix(name, "backend:") {
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

// parseStores reads [image] enabled_backends, default_backend and the
// generic keys of each [store:<id>]; the driver keys are left as written
// for the store's driver (see Check).
func (p *parser) parseStores(c *Config, state string) {
	const S = "image"
	store := func(id, typ, description string) Store {
		sec := "store:" + id
		return Store{ID: id, Type: typ, Description: p.str(sec, "store_description", description),
			Options: p.options(sec, "store_description"), StateDir: filepath.Join(state, "images", id)}
	}
	items := p.list(S, "enabled_backends", nil)
	if items == nil {
		for _, d := range defaultStores {
			c.Stores = append(c.Stores, store(d.ID, d.Type, d.Description))
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
			c.Stores = append(c.Stores, store(id, typ, ""))
		}
		c.Image.DefaultBackend = p.str(S, "default_backend", "")
		if c.Image.DefaultBackend == "" && len(c.Stores) > 0 {
			p.bad(S, "default_backend", "must be set when enabled_backends is set")
		}
	}
	if c.Image.DefaultBackend != "" && !c.hasStore(c.Image.DefaultBackend) {
		p.bad(S, "default_backend", "%q is not one of enabled_backends", c.Image.DefaultBackend)
	}
	for _, s := range p.f.Sections() {
		if id, ok := strings.CutPrefix(s.Name(), "store:"); ok {
			if !c.hasStore(id) && id != StagingStoreID {
				p.warnings = append(p.warnings, Problem{s.Name(), "", "store is not in [image] enabled_backends, ignored"})
			}
		}
	}
}

// options returns the keys of section, except the generic ones, as written.
func (p *parser) options(section string, generic ...string) map[string]string {
	out := map[string]string{}
	s, err := p.f.GetSection(section)
	if err != nil {
		return out
	}
	for _, k := range s.Keys() {
		if !contains(generic, k.Name()) {
			out[k.Name()] = k.String()
		}
	}
	return out
}

// parseBackends reads [volume] enabled_backends (default: one file backend
// "local") and each [backend:<name>].
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

// selfURL is the default advertised address of a node whose image API
// binds bind: that address, with the host's name for a wildcard host.
func selfURL(bind string) string {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "http://" + bind
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
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

func (c *Config) hasStore(id string) bool {
	_, ok := c.Store(id)
	return ok
}
