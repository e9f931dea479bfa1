package config

import (
	"fmt"
	"io"
	"strings"
)

// Print writes the resolved configuration as INI, secrets masked: the
// password, the credentials in the database URL, and the store options that
// their driver declares secret (Store.Secret; every option of a store no
// driver has read).
func Print(w io.Writer, c *Config) {
	fmt.Fprintf(w, "[DEFAULT]\nstate_path = %s\nenabled_services = %s\nmetrics_bind = %s\nlog_format = %s\ndebug = %t\ntask_lease = %d\ntask_workers = %d\n",
		c.Default.StatePath, strings.Join(c.Default.EnabledServices, ", "), c.Default.MetricsBind, c.Default.LogFormat, c.Default.Debug,
		int(c.Default.TaskLease.Seconds()), c.Default.TaskWorkers)
	exempt := make([]string, len(c.Default.ConnectionLimitExempt))
	for i, p := range c.Default.ConnectionLimitExempt {
		exempt[i] = p.String()
	}
	fmt.Fprintf(w, "client_socket_timeout = %d\nclient_header_timeout = %d\nclient_body_timeout = %d\nmax_connections_per_client = %d\nconnection_limit_exempt = %s\nworker_self_reference_url = %s\nprogress_stall_after = %d\n\n",
		int(c.Default.ClientSocketTimeout.Seconds()), int(c.Default.ClientHeaderTimeout.Seconds()), int(c.Default.ClientBodyTimeout.Seconds()),
		c.Default.MaxConnectionsPerClient, strings.Join(exempt, ", "), c.Default.SelfURL, int(c.Default.ProgressStallAfter.Seconds()))
	fmt.Fprintf(w, "[dashboard]\nbind = %s\nsession_ttl = %d\n\n", c.Dashboard.Bind, int(c.Dashboard.SessionTTL.Seconds()))
	fmt.Fprintf(w, "[database]\nconnection = %s\n\n", maskURL(c.Database.Connection))
	fmt.Fprintf(w, "[identity]\nbind = %s\npublic_url = %s\nregion = %s\ntoken_expiration = %d\ntoken_key_rotation = %d\n",
		c.Identity.Bind, c.Identity.PublicURL, c.Identity.Region, int(c.Identity.TokenExpiration.Seconds()),
		int(c.Identity.TokenKeyRotation.Seconds()))
	if c.Identity.External() {
		fmt.Fprintf(w, "auth_url = %s\nusername = %s\npassword = ***\nproject_name = %s\n", c.Identity.AuthURL, c.Identity.Username, c.Identity.ProjectName)
	}
	var stores []string
	for _, s := range c.Stores {
		stores = append(stores, s.ID+":"+s.Type)
	}
	fmt.Fprintf(w, "\n[image]\nbind = %s\npublic_url = %s\nenabled_backends = %s\ndefault_backend = %s\nimage_size_cap = %d\nuser_storage_quota = %d\nhashing_algorithm = %s\nenabled_import_methods = %s\nallowed_import_hosts = %s\nstaging_dir = %s\nshow_image_direct_url = %t\nshow_multiple_locations = %t\n",
		c.Image.Bind, c.Image.PublicURL, strings.Join(stores, ", "), c.Image.DefaultBackend, c.Image.ImageSizeCap,
		c.Image.UserStorageQuota, c.Image.HashingAlgorithm, strings.Join(c.Image.ImportMethods, ", "),
		strings.Join(c.Image.AllowedImportHosts, ", "), c.Image.StagingDir, c.Image.ShowImageDirectURL,
		c.Image.ShowMultipleLocations)
	fmt.Fprintf(w, "staging_store = %s\nstaging_shared = %t\nstore_check_interval = %d\n", c.Image.Staging.Type, c.Image.StagingShared,
		int(c.Image.StoreCheckInterval.Seconds()))
	for _, s := range append(c.Stores, c.Image.Staging) {
		fmt.Fprintf(w, "\n[store:%s]\n", s.ID)
		if s.ID != StagingStoreID {
			fmt.Fprintf(w, "store_description = %s\n", s.Description)
		}
		printOptions(w, s.Options, func(k string) bool { return s.Secret == nil || s.Secret[k] })
	}
	var backends []string
	for _, b := range c.Backends {
		backends = append(backends, b.Name)
	}
	fmt.Fprintf(w, "\n[volume]\nbind = %s\npublic_url = %s\nenabled_backends = %s\nglance_api_servers = %s\ndefault_volume_type = %s\n",
		c.Volume.Bind, c.Volume.PublicURL, strings.Join(backends, ", "), strings.Join(c.Volume.GlanceAPIServers, ", "), c.Volume.DefaultVolumeType)
	q := c.Volume.Quota
	fmt.Fprintf(w, "quota_volumes = %d\nquota_snapshots = %d\nquota_gigabytes = %d\nquota_backups = %d\nquota_backup_gigabytes = %d\nquota_groups = %d\nper_volume_size_limit = %d\n",
		q.Volumes, q.Snapshots, q.Gigabytes, q.Backups, q.BackupGigabytes, q.Groups, q.PerVolumeSizeLimit)
	for _, b := range c.Backends {
		fmt.Fprintf(w, "\n[backend:%s]\nvolume_driver = %s\nvolume_backend_name = %s\n", b.Name, b.VolumeDriver, b.VolumeBackendName)
		printOptions(w, b.Options, func(string) bool { return false })
	}
	fmt.Fprintf(w, "\n[backup]\nbackup_driver = %s\nbackup_container = %s\nbackup_compression_algorithm = %s\nbackup_native_threads_pool_size = %d\n",
		c.Backup.Driver, c.Backup.Container, c.Backup.Compression, c.Backup.Workers)
	printOptions(w, c.Backup.Options, func(k string) bool { return strings.HasSuffix(k, "_key") })
}

func printOptions(w io.Writer, opts map[string]string, secret func(key string) bool) {
	for _, k := range sortedKeys(opts) {
		v := opts[k]
		if secret(k) {
			v = "***"
		}
		fmt.Fprintf(w, "%s = %s\n", k, v)
	}
}

// maskURL hides a password in a database URL.
func maskURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPw := strings.Cut(rest[:at], ":")
	if !hasPw {
		return u
	}
	return scheme + "://" + user + ":***" + rest[at:]
}
