// Command ashlar runs Ashlar's identity, image and volume services and
// manages its database and configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/server"
	"github.com/ashlar-dev/ashlar/internal/version"
	voldrivers "github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

const usage = `usage: ashlar <command> [flags]

commands:
  serve [--config FILE] [--state-path DIR]   run the enabled services
  db migrate|status [--config FILE]          apply or list schema migrations
  bootstrap [--config FILE] [--state-path DIR]
                                             create the admin account, roles and catalog (idempotent;
                                             password from ASHLAR_ADMIN_PASSWORD or generated) and
                                             write <state_path>/openrc and clouds.yaml
  status [--config FILE] [--json]            list the nodes sharing the database (stale ones marked)
                                             and the tasks pending or running, with their node
  transfers [--config FILE] [--json] [--since DURATION]
                                             running and recent operations (uploads, imports, copies,
                                             volume work) with bytes, percent, rate, ETA, stalled, errors
  stores [--config FILE] [--json]            the image stores: images and bytes held, free space,
                                             health checked now, the volume types uploading to each
                                             and their drift (store gone, read-only or unhealthy)
  token rotate|keys [--config FILE]          add a token signing key (signs in a few seconds; older keys
                                             keep verifying their tokens until they expire) / list the keys
  config check FILE                          validate a config file and print it resolved
  version                                    print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "db":
		err = dbCmd(args[1:], stdout, stderr)
	case "bootstrap":
		err = bootstrap(args[1:], stdout, stderr)
	case "status":
		err = status(args[1:], stdout, stderr)
	case "transfers":
		err = transfersCmd(args[1:], stdout, stderr)
	case "stores":
		err = storesCmd(args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(args[1:], stdout, stderr)
	case "config":
		err = configCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "ashlar", version.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ashlar: %v\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(stderr, "ashlar: %v\n", err)
	return 1
}

// loadConfig parses the common --config and --state-path flags, and those
// that extra adds.
func loadConfig(name string, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (*config.Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("ASHLAR_CONFIG"), "config file (INI); embedded defaults when empty")
	state := fs.String("state-path", "", "override [DEFAULT] state_path")
	for _, f := range extra {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, err := config.Load(*path, *state, drivers.Check, voldrivers.Check)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return cfg, fs, nil
}

// openConfigured loads the config (as loadConfig) and opens its database
// with its schema checked (server.OpenDB), for the commands that work on
// the database of a deployment. The caller closes it.
func openConfigured(name string, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (*config.Config, *db.DB, error) {
	cfg, _, err := loadConfig(name, args, stderr, extra...)
	if err != nil {
		return nil, nil, err
	}
	d, err := server.OpenDB(context.Background(), cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, d, nil
}

func newLogger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Default.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Default.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(stderr, opts))
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

func serve(args []string, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Run(ctx, func() { logger.Info("ashlar ready", "version", version.Version, "state_path", cfg.Default.StatePath) })
}

func dbCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "migrate" && args[0] != "status") {
		return fmt.Errorf("%w: db needs migrate or status", errUsage)
	}
	cfg, _, err := loadConfig("db "+args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	ctx := context.Background()
	d, err := db.Open(ctx, cfg.Database.Connection)
	if err != nil {
		return err
	}
	defer d.Close()
	if args[0] == "migrate" {
		if err := d.Migrate(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s database is up to date\n", d.Engine)
		return nil
	}
	st, err := d.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
	}
	return nil
}

func configCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return fmt.Errorf("%w: config check FILE", errUsage)
	}
	cfg, err := config.Load(args[1], "", drivers.Check, voldrivers.Check)
	if cfg != nil {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if err != nil {
		return err
	}
	config.Print(stdout, cfg)
	return nil
}

func bootstrap(args []string, stdout, stderr io.Writer) error {
	cfg, d, err := openConfigured("bootstrap", args, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = identity.RunBootstrap(context.Background(), cfg, d, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "identity bootstrapped; credentials in %s/openrc and %s/clouds.yaml (cloud \"ashlar\")\n",
		cfg.Default.StatePath, cfg.Default.StatePath)
	return nil
}
