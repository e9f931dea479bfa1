package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/image"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/progress"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume"
)

// transferLimit bounds the operations `ashlar transfers` lists.
const transferLimit = 500

// transferJSON is one operation of `ashlar transfers --json`.
type transferJSON struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Subject    string     `json:"subject"`
	ProjectID  string     `json:"project_id"`
	Store      string     `json:"store"`
	State      task.State `json:"state"`
	BytesDone  int64      `json:"bytes_done"`
	BytesTotal int64      `json:"bytes_total"`
	// Percent and ETASeconds are -1 when not known.
	Percent    int     `json:"percent"`
	Rate       float64 `json:"rate_bytes_per_second"`
	ETASeconds int64   `json:"eta_seconds"`
	Stalled    bool    `json:"stalled"`
	Error      string  `json:"error,omitempty"`
	CreatedAt  string  `json:"created_at"`
}

// transfersCmd prints the running and recent operations with their
// progress: the dashboard's transfers page, as a table.
func transfersCmd(args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	var since time.Duration
	cfg, d, err := openConfigured("transfers", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.DurationVar(&since, "since", 24*time.Hour, "also list operations finished this recently")
	})
	if err != nil {
		return err
	}
	defer d.Close()
	infos, err := task.Find(context.Background(), d, task.Filter{Since: time.Now().Add(-since), Limit: transferLimit})
	if err != nil {
		return fmt.Errorf("listing tasks: %w", err)
	}
	now := time.Now()
	out := []transferJSON{}
	for _, i := range infos {
		v := progress.Of(i, now, cfg.Default.ProgressStallAfter)
		eta := int64(-1)
		if v.ETA >= 0 {
			eta = int64(v.ETA.Seconds())
		}
		out = append(out, transferJSON{ID: i.ID, Kind: i.Kind, Subject: i.Subject, ProjectID: i.ProjectID, Store: i.Store,
			State: i.State, BytesDone: v.Done, BytesTotal: v.Total, Percent: v.Percent, Rate: v.Rate, ETASeconds: eta,
			Stalled: v.Stalled, Error: v.Error, CreatedAt: i.CreatedAt.UTC().Format(time.RFC3339)})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"transfers": out})
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "no operation running or finished in the last %s\n", since)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tOPERATION\tSUBJECT\tSTORE\tSTATE\tPROGRESS\tRATE\tETA\tERROR")
	for _, t := range out {
		state := string(t.State)
		if t.Stalled {
			state += " (STALLED)"
		}
		prog := progress.Bytes(t.BytesDone)
		if t.BytesTotal >= 0 {
			prog += " / " + progress.Bytes(t.BytesTotal)
		}
		if t.Percent >= 0 {
			prog += fmt.Sprintf(" %d%%", t.Percent)
		}
		rate, eta := "-", "-"
		if t.Rate > 0 && t.State == task.Running {
			rate = progress.Bytes(int64(t.Rate)) + "/s"
		}
		if t.ETASeconds >= 0 && t.State == task.Running {
			eta = (time.Duration(t.ETASeconds) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Kind, t.Subject, dash(t.Store), state, prog, rate, eta,
			oneLine(t.Error))
	}
	tw.Flush()
	if len(out) == transferLimit {
		fmt.Fprintf(stdout, "(the newest %d shown)\n", transferLimit)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// storeJSON is one store of `ashlar stores --json`.
type storeJSON struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Default     bool   `json:"default"`
	ReadOnly    bool   `json:"read_only"`
	Images      int64  `json:"images"`
	Bytes       int64  `json:"bytes"`
	FreeBytes   *int64 `json:"free_bytes"`
	Health      string `json:"health"`
	HealthError string `json:"health_error,omitempty"`
	// Types are the volume types whose uploads land here.
	Types []string `json:"volume_types"`
}

// driftJSON is a volume type whose store is gone, read-only or unhealthy.
type driftJSON struct {
	Type  string `json:"volume_type"`
	Store string `json:"store"`
	Drift string `json:"drift"`
}

// storesCmd prints the image stores as this node sees them now (opened
// and checked from the configuration), what each holds, and the volume
// types that upload to each, flagging drift.
func storesCmd(args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	cfg, d, err := openConfigured("stores", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx := context.Background()
	usage, err := image.StoreUsage(ctx, d)
	if err != nil {
		return fmt.Errorf("counting images: %w", err)
	}
	typeStores, err := volume.TypeStores(ctx, d)
	if err != nil {
		return fmt.Errorf("listing volume types: %w", err)
	}
	rep := struct {
		Stores []storeJSON `json:"stores"`
		Drift  []driftJSON `json:"drift"`
	}{Stores: []storeJSON{}, Drift: []driftJSON{}}
	byID := map[string]*storeJSON{}
	def := cfg.Image.DefaultBackend
	for _, sc := range cfg.Stores {
		rep.Stores = append(rep.Stores, checkStoreNow(ctx, sc, sc.ID == def, usage[sc.ID]))
	}
	for i := range rep.Stores {
		byID[rep.Stores[i].ID] = &rep.Stores[i]
	}
	names := make([]string, 0, len(typeStores))
	for n := range typeStores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		id := typeStores[n]
		if id == "" {
			id = def
		}
		s := byID[id]
		switch {
		case s == nil:
			rep.Drift = append(rep.Drift, driftJSON{n, id, "store gone"})
			continue
		case s.ReadOnly:
			rep.Drift = append(rep.Drift, driftJSON{n, id, "store read-only"})
		case s.Health == "unhealthy":
			rep.Drift = append(rep.Drift, driftJSON{n, id, "store unhealthy"})
		}
		s.Types = append(s.Types, n)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tTYPE\tFLAGS\tIMAGES\tBYTES\tFREE\tHEALTH\tVOLUME TYPES")
	for _, s := range rep.Stores {
		var flags []string
		if s.Default {
			flags = append(flags, "default")
		}
		if s.ReadOnly {
			flags = append(flags, "read-only")
		}
		free := "-"
		if s.FreeBytes != nil {
			free = progress.Bytes(*s.FreeBytes)
		}
		health := s.Health
		if s.HealthError != "" {
			health += ": " + oneLine(s.HealthError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Type, dash(strings.Join(flags, ",")), s.Images,
			progress.Bytes(s.Bytes), free, health, dash(strings.Join(s.Types, ",")))
	}
	tw.Flush()
	if len(rep.Drift) == 0 {
		fmt.Fprintln(stdout, "\nno store drift: every volume type uploads to a healthy, writable store")
		return nil
	}
	fmt.Fprintln(stdout, "\nSTORE DRIFT (uploads to image of these types fail):")
	for _, dr := range rep.Drift {
		fmt.Fprintf(stdout, "  %s -> %s: %s\n", dr.Type, dr.Store, dr.Drift)
	}
	return nil
}

// checkStoreNow opens the store of sc and checks it: a store that cannot
// even be opened (its directory is a file, its endpoint is wrong) is
// unhealthy with that error.
func checkStoreNow(ctx context.Context, sc config.Store, isDefault bool, use image.StoreUse) storeJSON {
	s := storeJSON{ID: sc.ID, Type: sc.Type, Default: isDefault, Images: use.Images, Bytes: use.Bytes, Health: "healthy",
		Types: []string{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f, ok := drivers.Factories()[sc.Type]
	if !ok {
		s.Health, s.HealthError = "unhealthy", "no driver for type "+sc.Type
		return s
	}
	drv, err := f(ctx, sc)
	if err != nil {
		s.Health, s.HealthError = "unhealthy", err.Error()
		return s
	}
	st := store.NewStore(sc, drv, isDefault, nil)
	s.ReadOnly = st.ReadOnly
	checked, err := st.Check(ctx)
	switch {
	case err != nil:
		s.Health, s.HealthError = "unhealthy", err.Error()
	case !checked:
		s.Health = "unknown"
	}
	if free, known, err := st.FreeBytes(ctx); err == nil && known {
		s.FreeBytes = &free
	}
	return s
}
