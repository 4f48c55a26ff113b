"""Who owns a staging row: a ``w``/``x`` handle writes its content into an unnamed inode owned
by its process until it closes; rows whose owner is gone are reclaimed on a later open."""

from __future__ import annotations

import os
import socket


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), "" if unknown:
    with the pid it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except OSError:
        return ""


def process_token() -> str:
    """Identifies this process for staging rows: host, pid and the process's start time."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(token: str) -> bool:
    """Whether the process named by a staging row's token may still be running (a token
    from another host, or one this process may not signal, counts as alive)."""
    host, _, rest = token.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # can't tell: leave it
    try:
        pid = int(pid_s)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    if start:
        return _start_time(pid) == start
    return True
