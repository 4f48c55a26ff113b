"""Patch packs on consecutive releases of a real package: matplotlib 3.9.3 -> 3.9.4 and
3.10.0 -> 3.10.1 (the cp311 manylinux wheels from PyPI, unpacked: Python, compiled
extensions, fonts, images).

    python benchmarks/patch_compare.py [--pairs 3.9.3:3.9.4 3.10.0:3.10.1]  # writes PATCHES.md

Measured: the patch's size against the changed and added files compressed one by one with
zstd -19 (what a patch of whole files costs at best) and solid (a tar of them, zstd -19),
against `zstd -19 --patch-from` run on the two trees as tar files (a solid binary delta), and
the time to make and to apply each. Wheels are downloaded once into benchmarks/.work.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"


def wheel_tree(version: str, base: Path) -> Path:
    wheels = WORK / "wheels-patch"
    found = list(wheels.glob(f"matplotlib-{version}-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "-d", str(wheels), f"matplotlib=={version}"], check=True,
                       capture_output=True)
        found = list(wheels.glob(f"matplotlib-{version}-*.whl"))
    dest = base / version
    with zipfile.ZipFile(found[0]) as zf:
        zf.extractall(dest)
    return dest


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for top, _dirs, files in os.walk(root):
        for f in files:
            p = Path(top) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def tar_of(root: Path, out: Path, names: list[str] | None = None) -> None:
    with tarfile.open(out, "w") as tf:
        for name in sorted(names if names is not None else files_of(root)):
            info = tf.gettarinfo(str(root / name), arcname=name)
            info.mtime = 0
            with open(root / name, "rb") as f:
                tf.addfile(info, f)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    import zstandard

    from vfs_orm.pack import pack
    from vfs_orm.patching import apply_patch, make_patch

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", nargs="+", default=["3.9.3:3.9.4", "3.10.0:3.10.1"])
    ap.add_argument("--out", type=Path, default=HERE / "PATCHES.md")
    args = ap.parse_args()
    zversion = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout
    lines = ["# Patch packs: matplotlib releases", "",
             f"`python benchmarks/patch_compare.py --pairs {' '.join(args.pairs)}` "
             f"(one run per pair; {zversion.strip()}).", ""]
    for pair in args.pairs:
        args.old, _, args.new = pair.partition(":")
        base = Path(tempfile.mkdtemp(prefix="vfs-patches-"))
        try:
            lines += _run(args, base, zstandard, pack, apply_patch, make_patch)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    notes = args.out.read_text().split("\n## Notes", 1) if args.out.exists() else [""]
    text = "\n".join(lines) + ("\n## Notes" + notes[1] if len(notes) > 1 else "")
    args.out.write_text(text)
    print(text)
    return 0


def _run(args, base, zstandard, pack, apply_patch, make_patch) -> list[str]:  # type: ignore[no-untyped-def]
    old_dir, new_dir = wheel_tree(args.old, base), wheel_tree(args.new, base)
    old_files, new_files = files_of(old_dir), files_of(new_dir)
    changed = [k for k in new_files if k in old_files and old_files[k] != new_files[k]]
    added = [k for k in new_files if k not in old_files]
    deleted = [k for k in old_files if k not in new_files]
    touched = changed + added
    plain_touched = sum(len(new_files[k]) for k in touched)
    z19 = zstandard.ZstdCompressor(level=19)
    per_file = sum(len(z19.compress(new_files[k])) for k in touched)
    tar_of(new_dir, base / "touched.tar", touched)
    solid = len(z19.compress((base / "touched.tar").read_bytes()))
    old_pack, new_pack = base / "old.vfs", base / "new.vfs"
    pack(str(old_dir), str(old_pack), compression="zstd", compression_level=19)
    pack(str(new_dir), str(new_pack), compression="zstd", compression_level=19)
    rows = []
    for label, kw in (("vfs-orm make-patch (zstd 19)", {}),
                      ("vfs-orm make-patch --dict", {"dictionary": True})):
        patch = base / f"patch{len(rows)}.vfs"
        made = []
        make_s = timed(lambda: made.append(make_patch(old_pack, new_pack, patch, **kw)))
        out = base / f"applied{len(rows)}.vfs"
        apply_s = timed(lambda: apply_patch(old_pack, patch, output=out))
        rows.append((f"{label}: {made[0].deltas} files as deltas", patch.stat().st_size,
                     make_s, apply_s))
    tar_of(old_dir, base / "old.tar")
    tar_of(new_dir, base / "new.tar")
    pf = base / "patch.zst"
    make_s = timed(lambda: subprocess.run(
        ["zstd", "-q", "-19", "-f", f"--patch-from={base / 'old.tar'}", str(base / "new.tar"),
         "-o", str(pf)], check=True))
    apply_s = timed(lambda: subprocess.run(
        ["zstd", "-q", "-d", "-f", f"--patch-from={base / 'old.tar'}", str(pf), "-o",
         str(base / "new2.tar")], check=True))
    assert hashlib.sha256((base / "new2.tar").read_bytes()).digest() == \
        hashlib.sha256((base / "new.tar").read_bytes()).digest()
    rows.append(("zstd -19 --patch-from (tar files, solid delta)", pf.stat().st_size, make_s,
                 apply_s))
    solid_delta = pf.stat().st_size
    lines = [
        f"## matplotlib {args.old} -> {args.new}", "",
        f"cp311 manylinux wheels, unpacked: {len(new_files):,} files, "
        f"{sum(map(len, new_files.values())) / 2**20:.1f} MiB; "
        f"{len(changed)} changed, {len(added)} added, {len(deleted)} deleted; the changed and "
        f"added files hold {plain_touched / 2**20:.2f} MiB.", "",
        "Baselines: the changed and added files compressed one by one with zstd -19: "
        f"**{per_file / 2**20:.3f} MiB**; as one tar with zstd -19: {solid / 2**20:.3f} MiB.",
        "",
        "| patch | size | vs per-file zstd of changed+added | vs solid delta | make | apply "
        "(to a new file) |",
        "|---|---:|---:|---:|---:|---:|"]
    for label, size, mk, apl in rows:
        lines.append(f"| {label} | {size / 2**20:.3f} MiB | {size / per_file:.2f} | "
                     f"{size / solid_delta:.2f} | {mk:.1f} s | {apl:.1f} s |")
    lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
