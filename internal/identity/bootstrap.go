package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
)

// EnvAdminPassword names the variable that sets the admin password.
const EnvAdminPassword = "ASHLAR_ADMIN_PASSWORD"

// Bootstrap account names.
const (
	AdminUser      = "admin"
	AdminProject   = "admin"
	ServiceProject = "service"
)

// BootstrapOptions tune Bootstrap.
type BootstrapOptions struct {
	// Password for the admin user; EnvAdminPassword, then a generated one
	// when empty. An existing admin's password is only changed when a
	// password was given explicitly (option or environment).
	Password string
}

// BootstrapResult says what Bootstrap did.
type BootstrapResult struct {
	// Created reports whether the admin user was created now.
	Created bool
	// AdminPassword is the admin password when known: given, generated now,
	// or remembered in the state path from an earlier generation.
	AdminPassword string
	// Generated reports whether AdminPassword was generated now.
	Generated bool
}

// generatedPasswordFile remembers a generated admin password (0600) so that
// later starts can rewrite openrc with it.
func (s *Service) generatedPasswordFile() string {
	return filepath.Join(s.cfg.Default.StatePath, "admin_password")
}

// Bootstrap makes sure the Default domain, the roles admin/member/reader
// (and service, for keystonemiddleware's service users, as Keystone has),
// the admin and service projects, the admin user (admin on the admin
// project) and the catalog of this deployment exist. It is idempotent; the
// catalog endpoints it manages are updated to the configured URLs.
func (s *Service) Bootstrap(ctx context.Context, opts BootstrapOptions) (*BootstrapResult, error) {
	res := &BootstrapResult{}
	explicit := opts.Password
	if explicit == "" {
		explicit = os.Getenv(EnvAdminPassword)
	}
	snap := s.snap.Load()
	admin := snap.userByName[[2]string{DefaultDomainID, AdminUser}]
	var hash string
	switch {
	case admin == nil && explicit == "":
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		res.AdminPassword, res.Generated = base64.RawURLEncoding.EncodeToString(b), true
	case explicit != "":
		res.AdminPassword = explicit
	default:
		if b, err := os.ReadFile(s.generatedPasswordFile()); err == nil {
			res.AdminPassword = strings.TrimSpace(string(b))
		}
	}
	needHash := admin == nil || explicit != "" && bcrypt.CompareHashAndPassword([]byte(admin.PasswordHash), []byte(explicit)) != nil
	if needHash {
		h, err := bcrypt.GenerateFromPassword([]byte(res.AdminPassword), s.bcryptCost)
		if err != nil {
			return nil, err
		}
		hash = string(h)
	}
	now := db.Now()
	err := s.write(ctx, func(tx *db.Tx) error {
		if err := ensureDefaultDomain(ctx, tx); err != nil {
			return err
		}
		roleIDs := map[string]string{}
		for _, name := range []string{auth.RoleAdmin, auth.RoleMember, auth.RoleReader, RoleService} {
			id, err := ensureRole(ctx, tx, name)
			if err != nil {
				return err
			}
			roleIDs[name] = id
		}
		projIDs := map[string]string{}
		for _, name := range []string{AdminProject, ServiceProject} {
			id, err := ensureProject(ctx, tx, DefaultDomainID, name, "Bootstrap project", now)
			if err != nil {
				return err
			}
			projIDs[name] = id
		}
		if hash == "" && admin == nil {
			return errors.New("no password hash for a new admin user")
		}
		adminID, created, err := ensureUser(ctx, tx, DefaultDomainID, AdminUser, hash, projIDs[AdminProject], now)
		if err != nil {
			return err
		}
		res.Created = created
		if !res.Created && res.Generated {
			// Another process created the admin first with its own
			// generated password; keep that one.
			res.AdminPassword, res.Generated = "", false
		}
		if hash != "" && !res.Created && explicit != "" {
			if err := setPasswordHash(ctx, tx, adminID, hash, now); err != nil {
				return err
			}
		}
		if err := insertGrant(ctx, tx, assignment{UserID: adminID, ProjectID: projIDs[AdminProject], RoleID: roleIDs[auth.RoleAdmin]}); err != nil {
			return err
		}
		return s.bootstrapCatalog(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("identity bootstrap: %w", err)
	}
	if explicit != "" {
		// A remembered generated password is stale now; openrc, rewritten
		// with the given one, is where it can be read.
		if err := os.Remove(s.generatedPasswordFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if res.Generated {
		if err := os.MkdirAll(s.cfg.Default.StatePath, 0o750); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.generatedPasswordFile(), []byte(res.AdminPassword+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("remembering the admin password: %w", err)
		}
		s.logger.Warn("identity bootstrap: generated the admin password; it is shown once here and kept in openrc",
			"user", AdminUser, "password", res.AdminPassword, "openrc", filepath.Join(s.cfg.Default.StatePath, "openrc"))
	} else if res.Created {
		s.logger.Info("identity bootstrap: created the admin user", "user", AdminUser)
	}
	return res, nil
}

// catalogSpec is one service Bootstrap manages.
type catalogSpec struct{ typ, name, url string }

func (s *Service) catalogSpecs() []catalogSpec {
	c := s.cfg
	vol := strings.TrimRight(c.Volume.PublicURL, "/") + "/v3/%(project_id)s"
	return []catalogSpec{
		{"identity", "keystone", strings.TrimRight(c.Identity.PublicURL, "/") + "/v3/"},
		{"image", "glance", strings.TrimRight(c.Image.PublicURL, "/")},
		{"volumev3", "cinderv3", vol},
		{"block-storage", "cinder", vol},
	}
}

// bootstrapCatalog creates the managed services with public, internal and
// admin endpoints in the configured region, or points them at the
// configured URLs.
func (s *Service) bootstrapCatalog(ctx context.Context, tx *db.Tx) error {
	region := s.cfg.Identity.Region
	for _, spec := range s.catalogSpecs() {
		sid, err := ensureService(ctx, tx, spec.typ, spec.name, "Ashlar "+spec.typ)
		if err != nil {
			return err
		}
		for _, iface := range []string{"public", "internal", "admin"} {
			if err := ensureEndpoint(ctx, tx, sid, iface, region, spec.url); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteClientFiles writes <state_path>/openrc and <state_path>/clouds.yaml
// (cloud "ashlar") for the admin account. Without a known password it
// leaves existing files alone.
func (s *Service) WriteClientFiles(password string) error {
	dir := s.cfg.Default.StatePath
	if password == "" {
		s.logger.Info("identity: admin password unknown (set " + EnvAdminPassword + "); openrc and clouds.yaml left as they are")
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	authURL := strings.TrimRight(s.cfg.Identity.PublicURL, "/") + "/v3"
	cloudsPath, err := filepath.Abs(filepath.Join(dir, "clouds.yaml"))
	if err != nil {
		return err
	}
	region := s.cfg.Identity.Region
	openrc := fmt.Sprintf(`# Ashlar admin credentials: source this file, then run openstack commands.
export OS_AUTH_URL=%s
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=%s
export OS_PASSWORD=%s
export OS_PROJECT_NAME=%s
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_DOMAIN_NAME=Default
export OS_REGION_NAME=%s
export OS_INTERFACE=public
# lets "openstack --os-cloud ashlar ..." find clouds.yaml from any directory
export OS_CLIENT_CONFIG_FILE=%s
`, shellQuote(authURL), AdminUser, shellQuote(password), AdminProject, shellQuote(region), shellQuote(cloudsPath))
	clouds := fmt.Sprintf(`clouds:
  ashlar:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: Default
      project_domain_name: Default
    region_name: %s
    interface: public
    identity_api_version: 3
`, yamlQuote(authURL), AdminUser, yamlQuote(password), AdminProject, yamlQuote(region))
	for name, body := range map[string]string{"openrc": openrc, "clouds.yaml": clouds} {
		if err := writeFileAtomic(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// RunBootstrap is `ashlar bootstrap`: Bootstrap on an opened, migrated
// database, then openrc and clouds.yaml.
func RunBootstrap(ctx context.Context, cfg *config.Config, d *db.DB, logger *slog.Logger) (*BootstrapResult, error) {
	s, err := newService(ctx, cfg, d, logger, bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	res, err := s.Bootstrap(ctx, BootstrapOptions{})
	if err != nil {
		return nil, err
	}
	return res, s.WriteClientFiles(res.AdminPassword)
}
