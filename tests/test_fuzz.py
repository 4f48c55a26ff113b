"""Hostile databases: hundreds of mutants of a real vfs_orm database per run (seeded, so a
failure reproduces), each opened, walked, read, written and checked in a subprocess with a
timeout (``fuzz_worker.py``). Only a ``VFSError`` may leave the API; a ``TypeError``,
``ValueError``, ``OverflowError`` or ``MemoryError`` caused by stored data is a leak, a hang or a
crash a failure. A control run on the undamaged database must raise nothing at all, so the
checks cannot pass by refusing everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "fuzz_worker.py")
SEED = int(os.environ.get("VFS_ORM_FUZZ_SEED", "20261129"))
MUTANTS = int(os.environ.get("VFS_ORM_FUZZ_MUTANTS", "200"))  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("worker", [0, 1])
def test_mutants_leak_only_vfs_errors(tmp_path, worker):
    proc = subprocess.run(
        [sys.executable, WORKER, str(SEED + worker), str(worker * MUTANTS), str(MUTANTS),
         str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"worker crashed or hung:\n{proc.stderr[-4000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1] == {"done": MUTANTS}, proc.stdout[-2000:]
    leaks = lines[:-1]
    assert not leaks, "\n".join(json.dumps(leak) for leak in leaks[:20])
