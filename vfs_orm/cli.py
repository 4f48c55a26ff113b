"""The ``vfs-orm`` command line: a thin click layer over ``VFS``."""

from __future__ import annotations

import sys

import click

from vfs_orm.errors import VFSError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vfs-orm")
def cli() -> None:
    """vfs-orm: a whole file tree in one SQLite database."""


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where to write the demo databases (default: a temporary directory).")
def demo(workdir: str | None) -> None:
    """Run a short tour of vfs_orm on SQLite files and print a report of each step."""
    from vfs_orm.demo import run_demo

    run_demo(workdir, echo=click.echo)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except VFSError as exc:  # pragma: no cover - click handles most paths
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
