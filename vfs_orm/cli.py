"""``vfs-orm``: the command line, a thin click layer over ``VFS`` (and ``vfs_orm.pack``).

User mistakes (a missing file, not a vfs_orm database, a path that is not in the image) end
with one line on stderr and exit code 1; usage errors exit 2 (click). No traceback for them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat as _stat
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NoReturn

import click

from vfs_orm.backends import is_postgresql_url
from vfs_orm.errors import ForeignSchemaError, VFSError
from vfs_orm.upgrading import repair as repair_file
from vfs_orm.upgrading import upgrade as upgrade_file
from vfs_orm.vfs import VFS

CONTEXT = {"help_option_names": ["-h", "--help"]}
_UNDERLAY = re.compile(r"^(?P<path>.+?):(?P<prio>-?\d+)(?::(?P<name>[^:/\\]+))?$")


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError:
            _closed_pipe()
        except VFSError as exc:
            raise _fail(_describe(exc)) from None
        except (OSError, ValueError, TypeError) as exc:
            raise _fail(_describe(exc)) from None

    return wrapper


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        to = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
        return f"{exc.strerror}{where}{to}"
    return str(exc) or type(exc).__name__


def parse_underlay(value: str) -> tuple[str, int, str | None]:
    """PATH[:PRIORITY[:NAME]]"""
    m = _UNDERLAY.match(value)
    if m:
        return m["path"], int(m["prio"]), m["name"]
    return value, 0, None


underlay_option = click.option(
    "-u", "--underlay", "underlays", multiple=True, metavar="PATH[:PRIORITY[:NAME]]",
    help="Read through an underlay (repeatable; higher priority is searched first).")
tree_option = click.option(
    "--tree", "tree_name", default=None, metavar="NAME",
    help="The tree, when IMAGE is a PostgreSQL URL (default: vfs).")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def _require(image: str) -> None:
    if not is_postgresql_url(image) and not os.path.exists(image):
        raise _fail(f"no such image: {image}")


def open_image(image: str, underlays: tuple[str, ...] = (), read_only: bool = True,
               tree: str | None = None) -> VFS:
    _require(image)
    fs = _open_target(image, tree, read_only)
    try:
        _add_underlays(fs, underlays)
    except BaseException:
        fs.close()
        raise
    return fs


def _add_underlays(fs: VFS, underlays: tuple[str, ...]) -> None:
    # Lowest priority first, whatever order they were typed in: a patch is refused unless
    # its base is already below it (equal priorities keep the order given).
    for path, prio, name in sorted(map(parse_underlay, underlays), key=lambda u: u[1]):
        if not os.path.exists(path):
            raise _fail(f"no such underlay: {path}")
        fs.add_underlay(path, priority=prio, name=name)


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def _progress(quiet: bool, total_bytes: int, label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``tick(files, bytes_done)`` callback driving a click progress bar on a terminal;
    a no-op when quiet or when stderr is not a terminal."""
    if not _show_progress(quiet):
        yield lambda files, nbytes: None
        return
    with click.progressbar(length=max(total_bytes, 1), label=label, file=sys.stderr,
                           show_pos=False, show_percent=True) as bar:
        done = [0]

        def tick(files: int, nbytes: int) -> None:
            bar.label = f"{label} {files} files"
            bar.update(nbytes - done[0])
            done[0] = nbytes

        yield tick


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="vfs-orm")
def cli() -> None:
    """vfs-orm: a whole file tree in one SQLite database.

    IMAGE is a vfs_orm database file. Read commands accept --underlay (repeatable) to read
    through layers: the image on top, underlays by descending priority.
    """


@cli.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("image")
@tree_option
@click.option("--chunk-size", type=int, default=None, help="Chunk size of the new image.")
@click.option("--compress", type=click.Choice(["zstd", "zlib"]), default=None,
              help="Store content compressed (per chunk, only where it gets smaller; "
                   "256 KiB chunks unless --chunk-size says otherwise).")
@click.option("--level", type=int, default=None,
              help="Compression level: zstd -7..22 (default 3, fast; 19 for release packs), "
                   "zlib 1..9 (default 6).")
@click.option("--dict", "dictionary", is_flag=True, default=False,
              help="With --compress zstd: train a zstd dictionary on the small files, store it "
                   "in the image and compress small files with it (packs of many small files "
                   "get much smaller).")
@click.option("--solid/--no-solid", default=None,
              help="Store the small files in groups, several in one compressed value (format "
                   "0013): smaller release packs, a small file read by decoding its group "
                   "(default: at release levels, --level 19 and above).")
@click.option("--page-size", type=int, default=None,
              help="SQLite page size of the new image file: a power of two, 512..65536 "
                   "(default 1024 when compressed, 4096 otherwise; 512 makes a pack of many "
                   "small text files about 1% smaller).")
@click.option("--symlinks", type=click.Choice(["copy", "keep"]), default="copy",
              show_default=True,
              help="copy: a link to a file inside SRC is packed as that file's content, other "
                   "links are skipped; keep: every link is stored as a link (as tar does), "
                   "read with readlink and followed by a mount.")
@click.option("--force", is_flag=True, help="Replace IMAGE if it exists (a vfs_orm database).")
@quiet_option
@friendly
def pack(src: str, image: str, chunk_size: int | None, compress: str | None,
         level: int | None, dictionary: bool, solid: bool | None, page_size: int | None,
         symlinks: str, force: bool, quiet: bool, tree_name: str | None) -> None:
    """Pack the directory SRC into a new IMAGE (empty directories, mtimes and mode bits kept;
    symlinks never followed out of SRC, or stored as links with --symlinks keep; what cannot
    be packed (special files, symlink loops, names that are not UTF-8) skipped with a warning
    each). An existing IMAGE is refused
    unless --force, and even then only if it is a vfs_orm database.

    Everyday packs: --compress zstd (level 3). Release packs: --compress zstd --level 19
    --dict (1 MiB chunks and small files in groups at level 19 and above;
    benchmarks/PACKS.md has the sizes)."""
    from vfs_orm.pack import Report, scan
    from vfs_orm.pack import pack as do_pack

    if not os.path.isdir(src):
        raise _fail(f"not a directory: {src}")
    if (level is not None or dictionary) and compress is None:
        raise _fail("--level and --dict need --compress")
    if dictionary and compress != "zstd":
        raise _fail("--dict needs --compress zstd")
    if solid and compress is None:
        raise _fail("--solid needs --compress")
    if page_size is not None and is_postgresql_url(image):
        raise _fail("--page-size is a setting of a pack file, not of a PostgreSQL tree")
    if not is_postgresql_url(image) and os.path.lexists(image):
        if not force:
            raise _fail(f"{image} exists: pack makes a new image (--force replaces a vfs_orm "
                        f"database)")
        with VFS(image, read_only=True):  # refuses anything but a vfs_orm database
            pass
    report = Report()
    entries = scan(src, report, symlinks)
    total = sum(st.st_size for kind, _, st in entries if kind == "file")
    with _progress(quiet, total, "packing") as tick:
        result = do_pack(src, image, chunk_size=chunk_size, progress=tick, entries=entries,
                         tree=tree_name, compression=compress, compression_level=level,
                         dictionary=dictionary, page_size=page_size, symlinks=symlinks,
                         solid=solid)
    for line in report.skipped:
        click.echo(f"warning: {line}", err=True)
    if not quiet:
        click.echo(f"packed {result.files} files, {result.dirs} directories, "
                   f"{result.bytes} bytes into {image}")


@cli.command()
@click.argument("image")
@tree_option
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--path", "top", default="/", show_default=True, help="Subtree to extract.")
@underlay_option
@quiet_option
@friendly
def unpack(image: str, dest: str, top: str, underlays: tuple[str, ...], quiet: bool,
           tree_name: str | None) -> None:
    """Extract IMAGE into the directory DEST, safely even from a hostile image: nothing is
    written outside DEST or through a symlink; unsafe or colliding names are refused."""
    from vfs_orm.pack import unpack as do_unpack

    with open_image(image, underlays, tree=tree_name) as fs:
        # The total is only worth a walk when a bar will show it.
        total = sum(fs.getsize(os.path.join(d, f)) for d, _, files in fs.walk(top)
                    for f in files) if _show_progress(quiet) else 0
        with _progress(quiet, total, "unpacking") as tick:
            report = do_unpack(fs, dest, top=top, progress=tick)
    for line in report.skipped:
        click.echo(f"warning: {line}", err=True)
    if not quiet:
        click.echo(f"unpacked {report.files} files, {report.dirs} directories, "
                   f"{report.bytes} bytes into {dest}")
    if report.skipped:
        raise _fail(f"{len(report.skipped)} entries refused (see warnings above)")


def _mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


@cli.command(name="ls")
@click.argument("image")
@tree_option
@click.argument("path", default="/")
@click.option("-l", "long", is_flag=True, help="Kind, size, modification time (and layer).")
@underlay_option
@friendly
def ls_cmd(image: str, path: str, long: bool, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """List a directory of IMAGE (sorted)."""
    with open_image(image, underlays, tree=tree_name) as fs:
        if fs.exists(path) and not fs.isdir(path):  # a file, a link or a node: itself
            names, base = [os.path.basename(path.rstrip("/"))], os.path.dirname(path) or "/"
        else:
            names, base = fs.listdir(path), path
        for name in names:
            if not long:
                click.echo(name)
                continue
            at = f"{base.rstrip('/')}/{name}"
            st = fs.stat(at)
            kind = _stat.filemode(st.st_mode)[0]  # d, -, l, p, s, c or b, as ls -l
            layer = f"  [{st.source_layer}]" if underlays else ""
            target = f" -> {fs.readlink(at)}" if _stat.S_ISLNK(st.st_mode) else ""
            click.echo(f"{kind}{oct(st.st_mode & 0o777)[2:]:>4} {st.st_size:>12} "
                       f"{_mtime(st.st_mtime_ns)}{layer}  {name}{target}")


@cli.command()
@click.argument("image")
@tree_option
@click.argument("path", default="/")
@underlay_option
@friendly
def tree(image: str, path: str, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """Show the directory tree below PATH."""
    with open_image(image, underlays, tree=tree_name) as fs:
        if not fs.isdir(path):
            fs.listdir(path)  # raises the right error
        click.echo(path)
        files = dirs = 0
        for line, is_dir in _tree_lines(fs, path, ""):
            click.echo(line)
            files += not is_dir
            dirs += is_dir
        click.echo(f"\n{dirs} directories, {files} files")


def _tree_lines(fs: VFS, path: str, prefix: str) -> Iterator[tuple[str, bool]]:
    """The lines of ``tree``, depth first, with an explicit stack (a pack may nest
    directories deeper than Python's recursion limit): one listing per directory."""
    listed = fs.scandir(path)
    stack = [(path, prefix, iter(enumerate(listed)), len(listed))]
    while stack:
        top, pre, entries, count = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            continue
        k, entry = item
        last = k == count - 1
        is_dir = entry.is_dir()
        child = f"{top.rstrip('/')}/{entry.name}"
        # As GNU tree: a link shows its target (and counts as a file).
        shown = f"{entry.name} -> {fs.readlink(child)}" if entry.is_symlink() \
            else entry.name + ("/" if is_dir else "")
        yield f"{pre}{'└── ' if last else '├── '}{shown}", is_dir
        if is_dir:
            listed = fs.scandir(child)
            stack.append((child, pre + ("    " if last else "│   "), iter(enumerate(listed)),
                          len(listed)))


@cli.command()
@click.argument("image")
@tree_option
@click.argument("path")
@underlay_option
@friendly
def cat(image: str, path: str, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """Write a file of IMAGE to standard output."""
    with open_image(image, underlays, tree=tree_name) as fs, fs.open(path, "rb") as f:
        out = sys.stdout.buffer
        while block := f.read(1 << 20):
            out.write(block)
        out.flush()


@cli.command()
@click.argument("image")
@tree_option
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dest")
@friendly
def put(image: str, src: str, dest: str, tree_name: str | None) -> None:
    """Copy the local file SRC into IMAGE at DEST (streamed; the image is created if
    missing)."""
    if not os.path.isfile(src):
        raise _fail(f"no such file: {src}")
    st = os.stat(src)
    with _open_target(image, tree_name, False) as fs:
        with open(src, "rb") as f, fs.open(dest, "wb") as out:
            while block := f.read(1 << 20):
                out.write(block)
        fs.chmod(dest, st.st_mode & 0o7777)
        fs.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns))


@cli.command()
@click.argument("image")
@tree_option
@click.argument("src")
@click.argument("dest", type=click.Path())
@underlay_option
@friendly
def get(image: str, src: str, dest: str, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """Copy the file SRC of IMAGE to the local path DEST (written atomically)."""
    with open_image(image, underlays, tree=tree_name) as fs:
        st = fs.stat(src)
        if st.is_directory:
            raise _fail(f"is a directory: {src} (use unpack --path)")
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(src.rstrip("/")))
        tmp = f"{dest}.part-{os.getpid()}"
        try:
            with fs.open(src, "rb") as f, open(tmp, "wb") as out:
                while block := f.read(1 << 20):
                    out.write(block)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns))


@cli.command()
@click.argument("image")
@tree_option
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Remove a directory and its content.")
@friendly
def rm(image: str, path: str, recursive: bool, tree_name: str | None) -> None:
    """Remove a file (or, with -r, a directory tree) from IMAGE."""
    with open_image(image, read_only=False, tree=tree_name) as fs:
        if fs.isdir(path):
            if not recursive:
                raise _fail(f"is a directory: {path} (use -r)")
            fs.rmtree(path)
        else:
            fs.remove(path)


@cli.command()
@click.argument("image")
@tree_option
@click.argument("src")
@click.argument("dst")
@click.option("-f", "--force", is_flag=True, help="Replace an existing DST (os.replace).")
@friendly
def mv(image: str, src: str, dst: str, force: bool, tree_name: str | None) -> None:
    """Rename or move SRC to DST inside IMAGE (a directory moves whole)."""
    with open_image(image, read_only=False, tree=tree_name) as fs:
        (fs.replace if force else fs.rename)(src, dst)


#: ``vfs-orm stat``'s name of each entry type (symbolic links and nodes: format 0010).
_TYPES = {_stat.S_IFDIR: "directory", _stat.S_IFREG: "file", _stat.S_IFLNK: "symbolic link",
          _stat.S_IFIFO: "fifo", _stat.S_IFSOCK: "socket", _stat.S_IFCHR: "character device",
          _stat.S_IFBLK: "block device"}


@cli.command(name="stat")
@click.argument("image")
@tree_option
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@underlay_option
@friendly
def stat_cmd(image: str, path: str, as_json: bool, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """Show the metadata of PATH in IMAGE."""
    with open_image(image, underlays, tree=tree_name) as fs:
        st = fs.stat(path)
        info = {"path": path, "type": _TYPES.get(_stat.S_IFMT(st.st_mode), "file"),
                **({"target": fs.readlink(path)} if _stat.S_ISLNK(st.st_mode) else {}),
                "size": st.st_size, "mode": oct(st.st_mode), "modified": st.modified_at,
                "created": st.created_at, "mtime_ns": st.st_mtime_ns,
                "uid": st.st_uid, "gid": st.st_gid, "layer": st.source_layer}
    _emit(info, as_json)


@cli.command()
@click.argument("image")
@tree_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def info(image: str, as_json: bool, tree_name: str | None) -> None:
    """Format revision, manifest, counts, total and stored sizes, chunk and page size."""
    with open_image(image, tree=tree_name) as fs:
        data = fs.info()
    data["layers"] = [x["name"] for x in data["layers"]]
    _emit(data, as_json)


@cli.command()
@click.argument("image")
@tree_option
@click.argument("path")
@click.option("--detailed", is_flag=True, help="Every layer, and whether it has PATH.")
@underlay_option
@friendly
def which(image: str, path: str, detailed: bool, underlays: tuple[str, ...], tree_name: str | None) -> None:
    """Which layer provides PATH ("local" is IMAGE itself)."""
    with open_image(image, underlays, tree=tree_name) as fs:
        if detailed:
            _emit(fs.which_layer_detailed(path), True)
            return
        layer = fs.which_layer(path)
    if layer is None:
        raise _fail(f"not found in any layer: {path}")
    click.echo(layer)


@cli.command()
@click.argument("image")
@tree_option
@click.option("--quick", is_flag=True, help="PRAGMA quick_check instead of integrity_check.")
@click.option("--deep", is_flag=True,
              help="Also read every file back: chunk checksums and SHA-256 digests.")
@click.option("--repair", is_flag=True,
              help="First remove schema objects vfs_orm did not make (triggers, views, tables, "
                   "indexes) from IMAGE, a file you trust.")
@friendly
def check(image: str, quick: bool, deep: bool, repair: bool, tree_name: str | None) -> None:
    """Check IMAGE: SQLite's integrity check and the format's invariants (chunks present and
    sized right, every entry's parent a directory, no orphan chunks, no schema object vfs_orm
    did not make); with --deep, every file's content too (damaged files are listed). Exit 1
    on a problem."""
    if repair:
        for removed in repair_file(image):
            click.echo(f"removed {removed}", err=True)
    try:
        fs = _open_target(image, tree_name, True)
    except ForeignSchemaError as exc:
        for obj in exc.objects:
            click.echo(f"problem: foreign schema object: {obj}", err=True)
        raise _fail(f"{image}: {len(exc.objects)} problem(s) found; `vfs-orm check --repair "
                    f"{image}` removes foreign objects") from None
    except VFSError as exc:
        raise _fail(f"{image}: {_describe(exc)}") from None
    with fs:
        report = fs.check(quick=quick, deep=deep)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    if not report.ok:
        for line in report.problems:
            click.echo(f"problem: {line}", err=True)
        raise _fail(f"{image}: {len(report.problems)} problem(s) found")
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts.items())
    click.echo(f"{image}: ok ({counts})")


@cli.command()
@click.argument("image")
@tree_option
@click.option("--full", is_flag=True,
              help="Rewrite everything to its live size: on SQLite VACUUM (pages packed "
                   "full; other writers wait), on PostgreSQL VACUUM FULL (under an exclusive "
                   "lock: every reader and writer of the tree waits).")
@friendly
def compact(image: str, tree_name: str | None, full: bool) -> None:
    """Give the space of deleted files in IMAGE back to the disk."""
    _require(image)
    with _open_target(image, tree_name, False) as fs:
        result = fs.compact(full=full)
    click.echo(f"{image}: {result['bytes_before']:,} -> {result['bytes_after']:,} bytes "
               f"({result['method']})")


@cli.command()
@click.argument("image")
@tree_option
@click.option("--backup", is_flag=True, help="Keep a copy of the old file first.")
@friendly
def upgrade(image: str, backup: bool, tree_name: str | None) -> None:
    """Upgrade IMAGE (an older vfs_orm revision or a seed-library file) to the current
    format, in one transaction."""
    _require(image)
    result = upgrade_file(image, backup=backup, tree=tree_name)
    if result["from"] == result["to"]:
        click.echo(f"{image}: already at revision {result['to']}")
        return
    click.echo(f"{image}: upgraded from {result['from']} to {result['to']}"
               + (f" (backup: {result['backup']})" if result["backup"] else ""))


def _open_target(target: str, tree: str | None, read_only: bool) -> VFS:
    """A tree by image path or by database URL (``--tree`` names a PostgreSQL tree)."""
    if is_postgresql_url(target):
        return VFS(target, tree=tree, read_only=read_only)
    if tree is not None:
        raise _fail(f"--tree is for PostgreSQL URLs, not {target}")
    if read_only:
        _require(target)
    return VFS(target, read_only=read_only)


@cli.command()
@click.argument("old")
@click.argument("new", required=False)
@click.option("-c", "--checkpoint", "names", multiple=True, metavar="NAME",
              help="Compare checkpoints of OLD instead (give one: against its tree as it "
                   "is; two: between them).")
@tree_option
@click.option("--old-tree", default=None, metavar="NAME", help="OLD's tree (default: --tree).")
@click.option("--new-tree", default=None, metavar="NAME", help="NEW's tree (default: --tree).")
@friendly
def diff(old: str, new: str | None, names: tuple[str, ...], tree_name: str | None,
         old_tree: str | None, new_tree: str | None) -> None:
    """List the files that differ between two packs (or trees, by URL), or between
    checkpoints of one (-c A [-c B]), by their SHA-256 digests, without reading their
    content: "+ PATH" only in NEW, "- PATH" only in OLD, "M PATH" changed. Exit 1 if anything
    differs (what a patcher needs)."""
    from vfs_orm.integrity import tree_diff

    def tree_of(target: str, own: str | None) -> str | None:
        return (own or tree_name) if is_postgresql_url(target) else own

    if names:
        if new is not None or len(names) > 2:
            raise click.UsageError("with --checkpoint: one IMAGE and one or two checkpoints")
        with open_image(old, tree=tree_of(old, old_tree)) as fs:
            changes = fs.diff(names[0], names[1] if len(names) == 2 else None)
    else:
        if new is None:
            raise click.UsageError("NEW is missing (or compare checkpoints with -c)")
        try:
            a = _open_target(old, tree_of(old, old_tree), True)
            b = _open_target(new, tree_of(new, new_tree), True)
        except VFSError as exc:
            raise _fail(_describe(exc)) from None
        with a, b:
            changes = tree_diff(a, b)
    for mark, path in changes:
        click.echo(f"{mark} {path}")
    if changes:
        raise SystemExit(1)


@cli.command()
@click.argument("image")
@click.argument("name", required=False)
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="Keep only the last N automatic checkpoints.")
@tree_option
@friendly
def checkpoint(image: str, name: str | None, keep: int | None, tree_name: str | None) -> None:
    """Take a checkpoint of IMAGE named NAME (default: an automatic name, printed): a
    point-in-time copy of its tree that shares content (metadata only)."""
    with open_image(image, read_only=False, tree=tree_name) as fs:
        click.echo(fs.checkpoint(name, keep=keep))


@cli.command()
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@tree_option
@friendly
def checkpoints(image: str, as_json: bool, tree_name: str | None) -> None:
    """List IMAGE's checkpoints, oldest first: name, time, files, and the bytes only each
    holds (what dropping it frees)."""
    with open_image(image, tree=tree_name) as fs:
        found = fs.checkpoints()
    if as_json:
        click.echo(json.dumps([{**c._asdict(), "created": c.created} for c in found],
                              indent=2))
        return
    for c in found:
        when = datetime.fromtimestamp(c.created).isoformat(sep=" ", timespec="seconds")
        auto = " (auto)" if c.auto else ""
        click.echo(f"{c.name}\t{when}\t{c.files} files\t{c.alone_bytes} bytes alone{auto}")


@cli.command()
@click.argument("image")
@click.argument("name")
@tree_option
@friendly
def restore(image: str, name: str, tree_name: str | None) -> None:
    """Make IMAGE's tree exactly checkpoint NAME (all or nothing; the checkpoint stays)."""
    with open_image(image, read_only=False, tree=tree_name) as fs:
        fs.restore(name)
    click.echo(f"{image}: restored {name}")


@cli.command(name="drop-checkpoint")
@click.argument("image")
@click.argument("name")
@tree_option
@friendly
def drop_checkpoint(image: str, name: str, tree_name: str | None) -> None:
    """Drop checkpoint NAME of IMAGE, freeing what only it held."""
    with open_image(image, read_only=False, tree=tree_name) as fs:
        fs.drop_checkpoint(name)
    click.echo(f"{image}: dropped {name}")
@cli.command(name="make-patch")
@click.argument("old", type=click.Path(dir_okay=False, exists=True))
@click.argument("new", type=click.Path(dir_okay=False, exists=True))
@click.argument("patch", type=click.Path(dir_okay=False))
@click.option("--level", type=int, default=19, show_default=True,
              help="zstd level of the patch (it is made once and downloaded many times).")
@click.option("--dict", "dictionary", is_flag=True, default=False,
              help="Also train a zstd dictionary on the patch's small files (kept only if "
                   "it makes the patch smaller).")
@quiet_option
@friendly
def make_patch_cmd(old: str, new: str, patch: str, level: int, dictionary: bool,
                   quiet: bool) -> None:
    """Write PATCH, a pack to lie over OLD that makes it read as NEW: the files NEW added or
    changed (a changed file as a binary delta against OLD's version where that is smaller),
    whiteouts for those it deleted, and a record of both trees (a stack where PATCH lies over
    anything but OLD's content is refused)."""
    from vfs_orm.patching import make_patch

    report = make_patch(old, new, patch, compression_level=level, dictionary=dictionary)
    if not quiet:
        click.echo(f"patch {patch}: {report.added} added, {report.changed} changed, "
                   f"{report.deleted} deleted, {report.dirs} new directories; "
                   f"{report.deltas} stored as deltas ({report.delta_saved} bytes saved); "
                   f"{os.path.getsize(patch)} bytes")


@cli.command(name="apply-patch")
@click.argument("old", type=click.Path(dir_okay=False, exists=True))
@click.argument("patch", type=click.Path(dir_okay=False, exists=True))
@click.option("--output", default=None, type=click.Path(dir_okay=False),
              help="Write the patched pack here (OLD untouched); default: OLD in place, in "
                   "one transaction.")
@quiet_option
@friendly
def apply_patch_cmd(old: str, patch: str, output: str | None, quiet: bool) -> None:
    """Flatten PATCH into OLD (or into a new file, --output), checked against the tree the
    patch records before anything is committed: a failed or interrupted apply changes
    nothing."""
    from vfs_orm.patching import apply_patch

    report = apply_patch(old, patch, output=output)
    if not quiet:
        click.echo(f"applied {patch} to {output or old}: {report.added} added, "
                   f"{report.changed} changed, {report.deleted} deleted")


@cli.command(name="copy")
@click.argument("src")
@click.argument("dst")
@click.option("--from-tree", default=None, help="SRC's tree, when SRC is a PostgreSQL URL.")
@click.option("--to-tree", default=None, help="DST's tree, when DST is a PostgreSQL URL.")
@click.option("--no-checkpoints", is_flag=True, help="Leave SRC's checkpoints out.")
@quiet_option
@friendly
def copy_cmd(src: str, dst: str, from_tree: str | None, to_tree: str | None,
             no_checkpoints: bool, quiet: bool) -> None:
    """Copy a whole tree from SRC to DST, each an image path or a PostgreSQL URL (pack to
    server, server to pack, pack to pack), with its checkpoints unless --no-checkpoints. DST
    must be new or empty; the copy is one transaction there (all or nothing)."""
    from vfs_orm.copying import copy_tree

    with _open_target(src, from_tree, read_only=True) as source, \
            _open_target(dst, to_tree, read_only=False) as target:
        total = sum(source.getsize(f"{top.rstrip('/')}/{name}")
                    for top, _, files in source.walk("/") for name in files)
        with source.snapshot(), _progress(quiet, total, "copying") as tick:
            done = copy_tree(source, target, tick, checkpoints=not no_checkpoints)
    if not quiet:
        click.echo(f"copied {done.files} files, {done.dirs} directories, {done.bytes} bytes")


def _fuse_opts(values: tuple[str, ...]) -> dict[str, Any]:
    """``-o a,b=c`` (repeatable) as mfusepy's keyword options."""
    opts: dict[str, Any] = {}
    for value in values:
        for item in filter(None, value.split(",")):
            key, eq, val = item.partition("=")
            opts[key] = val if eq else True
    return opts


@cli.command()
@click.argument("image")
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@tree_option
@underlay_option
@click.option("--read-only", is_flag=True, help="Mount read-only (the kernel caches for longer).")
@click.option("-f", "--foreground", is_flag=True,
              help="Serve in this process until unmounted (Ctrl-C, SIGTERM or vfs-orm umount).")
@click.option("-o", "options", multiple=True, metavar="OPT[,OPT...]",
              help="FUSE mount options (e.g. allow_other, attr_timeout=5); repeatable.")
@friendly
def mount(image: str, mountpoint: str, tree_name: str | None, underlays: tuple[str, ...],
          read_only: bool, foreground: bool, options: tuple[str, ...]) -> None:
    """Mount IMAGE (a file, or a PostgreSQL URL with --tree) at MOUNTPOINT through FUSE,
    with its underlays. Without --foreground the command returns once the mount is up and a
    background process serves it."""
    from vfs_orm.adapters.mount import check_available, serve, wait_mounted

    check_available()
    opts = _fuse_opts(options)
    if not foreground:
        _mount_in_background(mountpoint, wait_mounted)
        return
    if read_only:
        fs = open_image(image, underlays, read_only=True, tree=tree_name)
    else:
        fs = _open_target(image, tree_name, False)
        try:
            _add_underlays(fs, underlays)
        except BaseException:
            fs.close()
            raise
    with fs:
        serve(fs, mountpoint, opts)


def _mount_in_background(mountpoint: str, wait_mounted: Callable[..., None]) -> None:
    """Run this same command with --foreground in a new session; return once it is mounted,
    or fail with the server's last line."""
    import subprocess
    import tempfile

    args = [sys.executable, "-m", "vfs_orm", *sys.argv[1:], "--foreground"]
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=log, start_new_session=True)
        try:
            wait_mounted(mountpoint, lambda: child.poll() is None)
        except VFSError:
            if child.poll() is None:
                child.terminate()
            child.wait()
            log.seek(0)
            lines = [ln for ln in log.read().splitlines() if ln.strip()]
            raise _fail(lines[-1].removeprefix("Error: ") if lines else "mount failed") from None
    click.echo(f"mounted at {mountpoint} (server pid {child.pid}; vfs-orm umount {mountpoint})")


@cli.command()
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@click.option("-z", "--lazy", is_flag=True, help="Detach now, finish when the last file closes.")
@friendly
def umount(mountpoint: str, lazy: bool) -> None:
    """Unmount a vfs-orm mount (fusermount3 -u); its server closes the database and exits."""
    from vfs_orm.adapters.mount import unmount

    unmount(mountpoint, lazy=lazy)


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where to write the demo's files (default: a temporary directory).")
@friendly
def demo(workdir: str | None) -> None:
    """A tour: pack assets, layer DLC and a mod, whiteouts, an atomic save, an old save
    upgraded. Prints a report of each step."""
    from vfs_orm.demo import run_demo

    run_demo(workdir, echo=click.echo)


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key}: {value}")


def _closed_pipe() -> NoReturn:
    """The reader went away (``vfs-orm ls IMAGE | head``): stop quietly with status 0, as
    ``ls`` does (click would exit 1). Standard output points at nothing from now on, so the
    interpreter's last flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def main() -> None:
    cli(prog_name="vfs-orm")
