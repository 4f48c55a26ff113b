"""Sizes, subjects and the stores the workloads run on (built once per session, on disk)."""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from subjects import Subject, all_subjects

SMOKE = os.environ.get("VFS_BENCH_SMOKE") == "1"


def _pg_server():
    """A PostgreSQL server for the PostgreSQL subjects: VFS_ORM_PG_URL, or a throwaway
    cluster (durable: fsync on, as a real server) started here and stopped at the end. None
    (and a one-line reason) where there is neither."""
    if os.environ.get("VFS_BENCH_NO_PG") == "1":
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import pgserver

    missing = pgserver.driver_missing()
    if missing is None:
        try:
            return pgserver.start(durable=True)
        except RuntimeError as exc:
            missing = str(exc)
    print(f"benchmarks: PostgreSQL subjects left out ({missing}; {pgserver.HOW_TO_ENABLE})",
          file=sys.stderr)
    return None


_CLUSTER = _pg_server()
if _CLUSTER is not None:
    import subjects_pg

    subjects_pg.SERVER["url"] = _CLUSTER.url


@dataclass(frozen=True)
class Sizes:
    small_files: int      # W1, W2, W7, W8
    big_mib: int          # W3, W4, W5
    random_reads: int     # W5
    store_sizes: tuple[int, ...]  # W6
    wide_dir: int         # W6: entries in the listed directory
    saves: int            # W9
    rounds: int
    slow_fraction: float  # how much of a sample the slow seed library gets
    layered_reads: int = 5_000    # W10
    stack_depths: tuple[int, ...] = (1, 3, 10, 25)


SIZES = (Sizes(200, 4, 200, (500, 2000), 100, 10, 1, 1.0, 200, (1, 3, 12)) if SMOKE else
         Sizes(10_000, 256, 5_000, (10_000, 100_000), 1_000, 300, 3, 0.05))

SUBJECTS = all_subjects() + ([] if _CLUSTER is None else subjects_pg.pg_subjects())
SUBJECT_IDS = [s.name for s in SUBJECTS]


@pytest.fixture(scope="session")
def workdir():
    base = Path(os.environ.get("VFS_BENCH_DIR") or tempfile.mkdtemp(prefix="vfsbench-"))
    base.mkdir(parents=True, exist_ok=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def pytest_generate_tests(metafunc):
    """Parametrize ``subject`` with the subjects that take part in the workload."""
    if "subject" in metafunc.fixturenames:
        workload = metafunc.function.__name__.split("_")[1]
        chosen = [s for s in SUBJECTS if (s.only is None or workload in s.only)
                  and workload not in s.cannot]
        # Function scope (not session): pytest then runs workload by workload, each subject
        # right after the other, instead of every workload of one subject before the next:
        # the two sides of a ratio are measured seconds apart, not minutes.
        metafunc.parametrize("subject", chosen, ids=[s.name for s in chosen])


def small_files(n: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """n x 4 KiB files: 100 dirs x 5 subdirs, half of them .json (the W7 pattern's half)."""
    rnd = random.Random(seed)
    blob = rnd.randbytes(4096)
    out = []
    per_sub = max(1, n // 500)
    for i in range(n):
        d, rest = divmod(i, 5 * per_sub)
        sub = rest // per_sub
        ext = "json" if i % 2 == 0 else "bin"
        out.append((f"/d{d % 100:02}/sub{sub}/f{i}.{ext}", blob[: 4096 - (i % 7)] + bytes(i % 7)))
    return out


def sample(subject: Subject, n: int, workload: str = "") -> int:
    slow = subject.slow or workload in subject.slow_in
    return max(10, int(n * SIZES.slow_fraction)) if slow else n


_built: dict[tuple[str, str], object] = {}


def built_store(subject: Subject, workdir: Path, kind: str, build) -> object:
    """A store built once per session per subject and kind."""
    key = (subject.name, kind)
    if key not in _built:
        path = workdir / f"{subject.name}-{kind}"
        _built[key] = build(path)
        settle()
    return _built[key]


def settle() -> None:
    """Flush the OS's dirty pages before timing: otherwise the write-back of a store just
    built (or of the last round's writes) lands in whichever subject is timed next."""
    os.sync()


def pytest_sessionfinish(session, exitstatus):
    for (name, _), store in _built.items():
        for s in SUBJECTS:
            if s.name == name:
                try:
                    s.close(store)
                except Exception:
                    pass
    if _CLUSTER is not None:
        _CLUSTER.stop()
