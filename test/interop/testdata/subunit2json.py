#!/usr/bin/python3
"""Reads a subunit v2 stream on stdin and prints one JSON object a line:
{"id": test id, "status": success|fail|skip|xfail|uxsuccess, "reason": text, "seconds": float}.
Used by test/interop/tempest_test.go (python3-subunit comes with tempest)."""
import json
import sys

import subunit
import testtools

results = {}


class Collect(testtools.StreamResult):
    def status(self, test_id=None, test_status=None, file_name=None, file_bytes=None,
               timestamp=None, **kw):
        if not test_id:
            return
        r = results.setdefault(test_id, {"id": test_id, "status": "", "reason": b"", "start": None, "stop": None})
        if test_status == "inprogress" and timestamp is not None:
            r["start"] = timestamp
        if test_status in ("success", "fail", "skip", "xfail", "uxsuccess"):
            r["status"] = test_status
            r["stop"] = timestamp
        if file_name in ("reason", "traceback") and file_bytes:
            r["reason"] += bytes(file_bytes)


stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
c = Collect()
c.startTestRun()
stream.run(c)
c.stopTestRun()
for r in results.values():
    if not r["status"]:
        continue
    secs = 0.0
    if r["start"] is not None and r["stop"] is not None:
        secs = (r["stop"] - r["start"]).total_seconds()
    print(json.dumps({"id": r["id"], "status": r["status"],
                      "reason": r["reason"].decode("utf8", "replace"), "seconds": secs}))
