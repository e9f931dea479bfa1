#!/usr/bin/python3
"""The consumer side of a volume attach, with Debian's python3-os-brick.

Written for Ashlar's interop suite (test/interop/attach_test.go). Two
commands, each printing one JSON object on stdout:

  brick_attach.py connector
      os-brick's connector properties of this host (what Nova sends as
      the attachment's connector).

  brick_attach.py write PATTERN_FILE < connection_info.json
      hands connection_info ({"driver_volume_type": ..., "data": {...}},
      Nova's form) to os-brick's connector factory, connects the volume,
      writes PATTERN_FILE's bytes at offset 0 of the path or device
      connect_volume returned, reads them back, disconnects, and prints
      {"protocol", "path", "written"}.
"""

import json
import os
import sys

from os_brick.initiator import connector as brick

ROOT_HELPER = 'sudo'


def connector_properties():
    try:
        return brick.get_connector_properties(ROOT_HELPER, '127.0.0.1', False, False)
    except Exception:  # no root helper here: the minimal properties
        import socket
        return {'host': socket.gethostname(), 'ip': '127.0.0.1', 'multipath': False,
                'platform': 'x86_64', 'os_type': 'linux'}


def write(pattern_file):
    info = json.load(sys.stdin)
    protocol = info['driver_volume_type'].upper()
    conn = brick.InitiatorConnector.factory(protocol, ROOT_HELPER)
    device = conn.connect_volume(info['data'])
    path = device['path']
    with open(pattern_file, 'rb') as f:
        pattern = f.read()
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, pattern, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(path, 'rb') as f:
        if f.read(len(pattern)) != pattern:
            raise SystemExit('read back differs from what was written to %s' % path)
    conn.disconnect_volume(info['data'], device)
    return {'protocol': protocol, 'path': path, 'written': len(pattern)}


def main():
    if sys.argv[1:2] == ['connector']:
        out = connector_properties()
    elif sys.argv[1:2] == ['write'] and len(sys.argv) == 3:
        out = write(sys.argv[2])
    else:
        raise SystemExit(__doc__)
    json.dump(out, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
