package volume

import (
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// Transfers, moves and host usage with snapshots: a volume's snapshots go
// with it to the accepting project (unless no_snapshots), a volume with
// snapshots does not move, a moving volume is not snapshotted, and os-hosts
// counts snapshots.
func TestSnapshotsWithTransfersAndMoves(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, nil))
		vol := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local", "size": 2}, "available")["id"].(string)
		sn := tb.createSnapshot("member", projA, vol, nil, "available")["id"].(string)

		// No move while it has snapshots.
		r := tb.action("member", vol, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid volume: Volume must not have snapshots." {
			t.Errorf("retype with a snapshot: %d %q", r.Code, msg)
		}
		h := tb.svc.hostname
		tb.Must(400, tb.action("admin", vol, map[string]any{"os-migrate_volume": map[string]any{"host": h + "@remote"}}))
		if v := tb.show(vol); v["status"] != "available" || v["migration_status"] != nil {
			t.Errorf("after refused moves: %v %v", v["status"], v["migration_status"])
		}

		// os-hosts counts the snapshot with its volume's backend.
		rows := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts/"+h+"@local", nil))["host"].([]any)
		total := rows[0].(map[string]any)["resource"].(map[string]any)
		if total["snapshot_count"] != "1" || total["total_snapshot_gb"] != "2" {
			t.Errorf("host usage %v", total)
		}

		// The snapshot goes with the volume.
		tr := tb.MustJSON(202, tb.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": vol}}))["transfer"].(map[string]any)
		tb.MustJSON(202, tb.Do("memberB", "POST", "/v3/"+projB+"/os-volume-transfer/"+tr["id"].(string)+"/accept", map[string]any{"accept": map[string]any{"auth_key": tr["auth_key"]}}))
		tb.MustJSON(200, tb.Do("memberB", "GET", snapBase(projB)+"/"+sn, nil))
		tb.Must(404, tb.Do("member", "GET", snapBase(projA)+"/"+sn, nil))

		// With no_snapshots it stays with the giver.
		tr = tb.MustJSON(202, tb.Do("memberB", "POST", "/v3/"+projB+"/volume-transfers", map[string]any{"transfer": map[string]any{"volume_id": vol, "no_snapshots": true}}, mv("3.55")...))["transfer"].(map[string]any)
		tb.MustJSON(202, tb.Do("member", "POST", "/v3/"+projA+"/volume-transfers/"+tr["id"].(string)+"/accept", map[string]any{"accept": map[string]any{"auth_key": tr["auth_key"]}}, mv("3.55")...))
		tb.MustJSON(200, tb.Do("memberB", "GET", snapBase(projB)+"/"+sn, nil))
		tb.MustJSON(200, tb.Do("member", "GET", "/v3/"+projA+"/volumes/"+vol, nil))

		// A snapshot not available keeps the volume from being offered.
		tb.Must(202, tb.Do("admin", "POST", snapBase(projA)+"/"+sn+"/action", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		r = tb.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": vol}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid snapshot: snapshot: "+sn+" status must be available" {
			t.Errorf("offer with an error snapshot: %d %q", r.Code, msg)
		}

		// A moving volume is not snapshotted.
		other := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		tb.Must(202, tb.action("member", other, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		g.wait(t)
		r = tb.Do("member", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": other, "force": true}})
		if _, msg := errMessage(t, r); r.Code != 400 || !strings.Contains(msg, "migrating") {
			t.Errorf("snapshot of a moving volume: %d %q", r.Code, msg)
		}
		close(g.release)
		tb.waitMigration(other, "success")
		tb.createSnapshot("member", projA, other, nil, "available")
	})
}
