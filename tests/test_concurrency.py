"""One VFS shared by 8 threads, and several processes on one file: nothing lost, no error."""

import random
import subprocess
import sys
import textwrap
import threading

from vfs_orm import VFS


def _increment(fs: VFS, path: str) -> None:
    with fs.atomic_batch():
        fs.write_text(path, str(int(fs.read_text(path)) + 1))


def test_eight_threads_mixed_work(any_vfs):
    fs = any_vfs
    fs.write_text("/counter", "0")
    errors: list[BaseException] = []
    per_thread = 60

    def worker(n: int) -> None:
        rnd = random.Random(n)
        try:
            for i in range(per_thread):
                _increment(fs, "/counter")
                mine = f"/t{n}/f{i % 5}"
                payload = f"{n}:{i}".encode() * rnd.randint(1, 3000)
                fs.write_bytes(mine, payload)
                assert fs.read_bytes(mine) == payload
                op = rnd.random()
                if op < 0.2:
                    fs.rename(mine, f"/t{n}/renamed{i}")
                    assert fs.exists(f"/t{n}/renamed{i}")
                    fs.remove(f"/t{n}/renamed{i}")
                elif op < 0.4:
                    with fs.open(f"/t{n}/log", "a") as f:
                        f.write(f"{i}\n")
                elif op < 0.5:
                    fs.copytree(f"/t{n}", f"/c{n}", dirs_exist_ok=True)
                    fs.rmtree(f"/c{n}")
                fs.listdir("/")
                fs.glob(f"/t{n}/*")
                list(fs.walk(f"/t{n}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fs.read_text("/counter") == str(8 * per_thread)
    for n in range(8):
        if fs.exists(f"/t{n}/log"):
            lines = fs.read_text(f"/t{n}/log").split()
            assert lines == sorted(lines, key=int)


def test_concurrent_readers_see_whole_files(db_path):
    fs = VFS(db_path)
    a, b = b"A" * 300_000, b"B" * 300_000
    fs.write_bytes("/f", a)
    stop = threading.Event()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            d = fs.read_bytes("/f")
            if d not in (a, b):
                bad.append(len(d))

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    for i in range(40):
        fs.write_bytes("/f", a if i % 2 else b)
    stop.set()
    for t in readers:
        t.join()
    fs.close()
    assert bad == []


CHILD = textwrap.dedent("""
    import sys
    from vfs_orm import VFS
    path, n = sys.argv[1], int(sys.argv[2])
    with VFS(path) as fs:
        for _ in range(n):
            with fs.atomic_batch():
                fs.write_text("/counter", str(int(fs.read_text("/counter")) + 1))
                fs.write_bytes("/blob", b"x" * 20000)
    print("done")
""")


def test_processes_lose_no_update(db_path):
    with VFS(db_path) as fs:
        fs.write_text("/counter", "0")
    procs, n = 4, 150
    children = [subprocess.Popen([sys.executable, "-c", CHILD, db_path, str(n)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(procs)]
    outs = [c.communicate(timeout=300) for c in children]
    for c, (out, err) in zip(children, outs):
        assert c.returncode == 0, err
        assert "locked" not in err and out.strip() == "done"
    with VFS(db_path) as fs:
        assert fs.read_text("/counter") == str(procs * n)
