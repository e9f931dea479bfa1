#!/usr/bin/env bash
# A throwaway one-node Ceph cluster for the rbd tests: one monitor, one
# manager (the pool statistics the scheduler's capacity comes from) and one
# BlueStore OSD on a sparse file, all in userspace on 127.0.0.1 with cephx
# on. No LVM, no kernel module, no root-only device: only files under DIR.
#
#   scripts/ceph-cluster.sh start DIR    bootstrap in DIR (empty or absent) and wait until usable
#   scripts/ceph-cluster.sh stop DIR     stop the daemons started in DIR (by their recorded pids)
#   scripts/ceph-cluster.sh wipe DIR     stop, then delete DIR
#
# Environment: CEPH_MON_PORT (msgr2, default 3300) and CEPH_MON_V1_PORT
# (msgr1, for os-brick, which writes a v1 mon_host; default 6789) are the
# monitor's ports; tests pass free ones. CEPH_OSD_SIZE is the sparse block
# file's size (default 10G). CEPH_TIMEOUT bounds each wait (default 120 s).
#
# DIR/ceph.conf is the cluster's conf; it names the keyrings
# DIR/keyring/ceph.client.<user>.keyring, so `--id <user>` is all a client
# adds. Pools: volumes and images, rbd-enabled. Users, with the caps an
# OpenStack deployment gives them: client.admin, client.cinder (rbd on
# volumes, read-only rbd on images, for clones of images) and client.glance
# (rbd on images). The fsid is in DIR/fsid once the cluster is usable.
set -euo pipefail

usage() { echo "usage: $0 start|stop|wipe DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/ceph.conf
timeout_s=${CEPH_TIMEOUT:-120}

# stop_daemons signals only the pids this script recorded, and only while
# they still are ceph daemons (a recycled pid is left alone).
stop_daemons() {
  local name pid
  for name in osd.0 mgr.x mon.a; do
    [ -f "$dir/pid/$name" ] || continue
    pid=$(cat "$dir/pid/$name")
    if kill -0 "$pid" 2>/dev/null && grep -q '^ceph-' "/proc/$pid/comm" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid/$name"
  done
}

case $cmd in
  stop) stop_daemons; exit 0 ;;
  wipe) stop_daemons; rm -rf "$dir"; exit 0 ;;
  start) ;;
  *) usage ;;
esac

for tool in ceph-mon ceph-osd ceph-mgr ceph-authtool monmaptool ceph rbd uuidgen; do
  command -v "$tool" >/dev/null || { echo "ceph-cluster: $tool not found (scripts/setup.sh installs Ceph)" >&2; exit 3; }
done
if [ -e "$dir/fsid" ]; then
  echo "ceph-cluster: $dir already holds a cluster; wipe it first" >&2; exit 1
fi

v2=${CEPH_MON_PORT:-3300}
v1=${CEPH_MON_V1_PORT:-6789}
fsid=$(uuidgen)
mkdir -p "$dir"/{pid,log,run,keyring,mon/ceph-a,mgr/ceph-x,osd/ceph-0}
started=$(date +%s)

# retry runs "$@" until it succeeds or CEPH_TIMEOUT passes.
retry() {
  local what=$1; shift
  while ! "$@" >/dev/null 2>&1; do
    if (( $(date +%s) - started > timeout_s )); then
      echo "ceph-cluster: timed out waiting for $what; logs in $dir/log" >&2
      stop_daemons; exit 1
    fi
    sleep 0.5
  done
}
# daemon runs a ceph daemon in the foreground, in its own session, and
# records its pid.
daemon() {
  local name=$1; shift
  setsid "$@" -f >>"$dir/log/$name.out" 2>&1 </dev/null &
  echo $! >"$dir/pid/$name"
}
ceph_() { timeout 20 ceph -c "$conf" --connect-timeout 15 "$@"; }

cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $dir/keyring/\$cluster.\$name.keyring
run dir = $dir/run
crash dir = $dir/run
# One OSD: single-copy pools, placement by OSD, few PGs.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# A test machine's disk is often fuller than the monitor's defaults allow.
mon data avail warn = 2
mon data avail crit = 1
[client]
# Clients (librbd in Ashlar, qemu-img, os-brick) write no socket or log.
admin socket =
log file = /dev/null
[mon]
mon data = $dir/mon/\$cluster-\$id
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
[mgr]
mgr data = $dir/mgr/\$cluster-\$id
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mgr disabled modules = diskprediction_local nfs restful iostat
[osd]
osd data = $dir/osd/\$cluster-\$id
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
osd objectstore = bluestore
# The block device is a sparse regular file in osd data.
bluestore block create = true
bluestore block size = $(numfmt --from=iec "${CEPH_OSD_SIZE:-10G}")
bluestore debug enforce settings = ssd
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
EOF

k=$dir/keyring
key() { ceph-authtool --create-keyring "$k/ceph.$1.keyring" --gen-key -n "$1" "${@:2}" >/dev/null; }
key mon. --cap mon 'allow *'
key client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
key client.cinder --cap mon 'profile rbd' --cap mgr 'profile rbd pool=volumes' \
  --cap osd 'profile rbd pool=volumes, profile rbd-read-only pool=images'
key client.glance --cap mon 'profile rbd' --cap mgr 'profile rbd pool=images' --cap osd 'profile rbd pool=images'
key mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
for u in client.admin client.cinder client.glance mgr.x; do
  ceph-authtool "$k/ceph.mon..keyring" --import-keyring "$k/ceph.$u.keyring" >/dev/null
done
cp "$k/ceph.mgr.x.keyring" "$dir/mgr/ceph-x/keyring"

monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" "$dir/run/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/run/monmap" --keyring "$k/ceph.mon..keyring" >"$dir/log/mkfs.out" 2>&1
daemon mon.a ceph-mon -c "$conf" -i a
retry "the monitor" ceph_ mon stat
daemon mgr.x ceph-mgr -c "$conf" -i x

osd_uuid=$(uuidgen)
osd_key=$(ceph-authtool --gen-print-key)
printf '{"cephx_secret": "%s"}' "$osd_key" >"$dir/run/osd.json"
ceph_ osd new "$osd_uuid" -i "$dir/run/osd.json" >/dev/null
rm -f "$dir/run/osd.json"
ceph-authtool --create-keyring "$k/ceph.osd.0.keyring" -n osd.0 --add-key "$osd_key" >/dev/null
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/mkfs.out" 2>&1
daemon osd.0 ceph-osd -c "$conf" -i 0

for pool in volumes images; do
  retry "pool $pool" ceph_ osd pool create "$pool" 8 8 replicated
  retry "rbd on pool $pool" timeout 15 rbd -c "$conf" pool init "$pool"
done
# Usable: a client of each pool can write, and the manager reports pool
# statistics (ceph df), which the drivers' capacity comes from.
for pool in volumes images; do
  retry "writes to $pool" timeout 15 rados -c "$conf" -p "$pool" put probe /dev/null
  rados -c "$conf" -p "$pool" rm probe >/dev/null 2>&1 || true
done
has_space() { ceph_ df --format json | grep -q '"max_avail":[1-9]'; }
retry "the manager's pool statistics" has_space
echo "$fsid" >"$dir/fsid"
echo "ceph-cluster: usable in $(( $(date +%s) - started )) s; CEPH_CONF=$conf"
