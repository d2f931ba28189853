"""The Ray that `robprune search` starts for itself listens on loopback only.

The environment the test gives it has none of the loopback switches (no
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER): robprune's own defaults must keep every listener of the
local Ray (GCS, raylet, object manager, workers, agents) on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.paths import ROOT

_PROBE = r"""
import json, os
from collections import defaultdict
from search.run.session import connect
started = connect(None, num_cpus=1)
import ray
ray.get(ray.remote(lambda: 1).remote())  # a worker is up as well

def tree(root):
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child); todo.append(child)
    return found

inodes = set()
for pid in tree(os.getpid()):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
listening = []
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
            listening.append(parts[1].split(":")[0])
print(json.dumps({"started": started, "listening": listening}))
ray.shutdown()
"""


def test_local_ray_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ENABLE_WINDOWS")}
    env.update(PYTHONPATH=str(ROOT), RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["started"] and len(found["listening"]) >= 3, found
    # 127.0.0.1, ::1, ::ffff:127.0.0.1 (as /proc/net/tcp{,6} write them)
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    assert set(found["listening"]) <= loopback, found["listening"]
