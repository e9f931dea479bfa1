package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ashlar-dev/ashlar/internal/task"
)

// statusTaskLimit bounds the unfinished tasks `ashlar status` lists.
const statusTaskLimit = 500

// statusNode and statusTask are the JSON form of `ashlar status --json`.
type statusNode struct {
	ID          string         `json:"id"`
	Address     string         `json:"address"`
	Hostname    string         `json:"hostname"`
	PID         int            `json:"pid"`
	Version     string         `json:"version"`
	Services    []string       `json:"services"`
	StartedAt   time.Time      `json:"started_at"`
	HeartbeatAt time.Time      `json:"heartbeat_at"`
	State       task.NodeState `json:"state"`
}

type statusTask struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Subject   string     `json:"subject"`
	State     task.State `json:"state"`
	Node      string     `json:"node"`
	Host      string     `json:"host,omitempty"`
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	LastError string     `json:"last_error,omitempty"`
	// BytesDone of BytesTotal (-1: not known) in the current attempt.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

type statusReport struct {
	Nodes []statusNode `json:"nodes"`
	Tasks []statusTask `json:"tasks"`
	// Stale counts the nodes that stopped heartbeating without stopping.
	Stale int `json:"stale_nodes"`
}

// status prints the nodes sharing the configured database, the tasks
// pending or running (with the node holding each) and the stale nodes.
func status(args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	_, d, err := openConfigured("status", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx := context.Background()
	nodes, err := task.Nodes(ctx, d)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	tasks, err := task.Find(ctx, d, task.Filter{Active: true, Limit: statusTaskLimit})
	if err != nil {
		return fmt.Errorf("listing tasks: %w", err)
	}
	now := time.Now()
	rep := statusReport{Nodes: []statusNode{}, Tasks: []statusTask{}}
	for _, n := range nodes {
		st := n.State(now)
		if st == task.NodeStale {
			rep.Stale++
		}
		rep.Nodes = append(rep.Nodes, statusNode{ID: n.ID, Address: n.Address, Hostname: n.Hostname, PID: n.PID,
			Version: n.Version, Services: n.Services, StartedAt: n.StartedAt, HeartbeatAt: n.HeartbeatAt, State: st})
	}
	for _, t := range tasks {
		rep.Tasks = append(rep.Tasks, statusTask{ID: t.ID, Kind: t.Kind, Subject: t.Subject, State: t.State, Node: t.Node,
			Host: t.Host, Attempts: t.Attempts, CreatedAt: t.CreatedAt, LastError: t.LastError,
			BytesDone: t.BytesDone, BytesTotal: t.BytesTotal})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(stdout, rep, now)
	return nil
}

func printStatus(w io.Writer, rep statusReport, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tSTATE\tADDRESS\tHOST\tPID\tVERSION\tSERVICES\tSTARTED\tHEARTBEAT\n")
	for _, n := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.State, n.Address, n.Hostname, n.PID, n.Version,
			strings.Join(n.Services, ","), n.StartedAt.Local().Format(time.DateTime), ago(n.HeartbeatAt))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d nodes, %d stale (stopped heartbeating without stopping: their tasks are taken over once their leases run out)\n\n",
		len(rep.Nodes), rep.Stale)
	if len(rep.Tasks) == 0 {
		fmt.Fprintln(w, "no task pending or running")
		return
	}
	fmt.Fprintf(tw, "TASK\tKIND\tSUBJECT\tSTATE\tNODE\tATTEMPTS\tPROGRESS\tCREATED\tLAST ERROR\n")
	for _, t := range rep.Tasks {
		node := t.Node
		if node == "" {
			node = "-"
		}
		if t.Host != "" {
			node += " (host " + t.Host + ")"
		}
		progress := "-"
		if t.BytesDone > 0 || t.BytesTotal > 0 {
			progress = fmt.Sprintf("%d MiB", t.BytesDone>>20)
			if t.BytesTotal > 0 {
				progress += fmt.Sprintf(" of %d MiB", t.BytesTotal>>20)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Kind, t.Subject, t.State, node, t.Attempts,
			progress, ago(t.CreatedAt), t.LastError)
	}
	tw.Flush()
	if len(rep.Tasks) == statusTaskLimit {
		fmt.Fprintf(w, "(the newest %d shown)\n", statusTaskLimit)
	}
}
