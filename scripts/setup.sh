#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (as root) and
# builds the pinned S3 test server into a cache outside the repository.
# Idempotent: a second run only checks.
set -euo pipefail

CACHE="${ASHLAR_CACHE:-$HOME/.cache/ashlar}"
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# Debian packages: the real OpenStack clients, tempest and services for the
# interop suite (test/interop: clients, tempest, and glance-api, keystone under
# uwsgi and cinder-api as peers), haproxy in front of the cluster test's nodes,
# qemu-img for image formats, curl for probes, xfsprogs for the file volume
# driver's tests on a loop-mounted XFS with reflinks, chromium for the
# dashboard's browser test (internal/server TestDashboardInBrowser, chromedp),
# os-brick for the attach consumer tests (test/interop/attach_test.go); Ceph
# (monitor, manager, OSD, CLI) for the one-node cluster of the rbd tests
# (scripts/ceph-cluster.sh), librados-dev/librbd-dev to build with
# -tags ceph,pacific, python3-rbd for os-brick's RBD connector and
# qemu-block-extra for qemu-img's rbd: paths.
PKGS=(curl make qemu-utils python3-openstackclient python3-glanceclient python3-cinderclient tempest
      python3-stestr python3-subunit glance-api cinder-api keystone uwsgi-core uwsgi-plugin-python3
      xfsprogs haproxy chromium python3-os-brick ceph-mon ceph-osd ceph-mgr ceph-common librados-dev
      librbd-dev python3-rbd python3-rados qemu-block-extra uuid-runtime)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${missing[*]} (run as root to install them)" >&2
  else
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The OpenStack packages would start their daemons on 5000/9292/8776;
    # the suite starts its own peers, so forbid service starts while installing.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      guard=/usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$guard" ] || rm -f "$guard"
  fi
fi

# MinIO, pinned, for the S3 store conformance tests (about 8 min cold on 2 cores).
MINIO="$CACHE/minio-$MINIO_VERSION/minio"
if [ ! -x "$MINIO" ]; then
  echo "setup: building MinIO $MINIO_VERSION into $CACHE (first time only)"
  mkdir -p "$CACHE"
  GOBIN="$CACHE/minio-$MINIO_VERSION" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
fi
echo "setup: ok (minio at $MINIO)"
