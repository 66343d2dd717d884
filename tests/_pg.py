"""A private, throw-away PostgreSQL cluster for tests and benchmarks.

``initdb`` into a temporary folder, ``pg_ctl start`` on a free loopback port with the unix
socket in that folder too, create a database, hand out its SQLAlchemy URL, then stop the
server and delete everything. ``initdb`` refuses to run as root, so when we are root every
server command runs as the ``postgres`` user (``runuser``), which owns the folder.

Usage::

    from _pg import pg_bin_dir, postgres_cluster

    with postgres_cluster() as url:  # "postgresql+psycopg://postgres@127.0.0.1:PORT/mcphive"
        ...
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresUnavailable", "pg_bin_dir", "postgres_cluster"]

_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
"""Settings for tests: a crash loses the throw-away cluster anyway, so skip the flushes."""


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the ``postgres`` user, when root) are missing."""


def pg_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: $MCPHIVE_PG_BIN, Debian's newest, or PATH; None if absent."""
    candidates = [os.environ.get("MCPHIVE_PG_BIN", "")]
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), key=_version, reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _version(path: str) -> int:
    name = Path(path).parent.name
    return int(name) if name.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_owner(command: list[str]) -> list[str]:
    # initdb and postgres refuse root; the cluster belongs to the postgres user instead.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr or done.stdout}")


def _prepare_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mcphive-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as e:
            shutil.rmtree(folder)
            raise PostgresUnavailable("running as root but there is no 'postgres' user to own the cluster") from e
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder


@contextmanager
def postgres_cluster(
    *, database: str = "mcphive", fast: bool = True, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run a private PostgreSQL server for the duration of the ``with`` block and yield its URL.

    Args:
        database: the database created for the caller.
        fast: turn off fsync and synchronous commit (tests); False keeps the durable defaults (benchmarks).
        settings: further ``postgresql.conf`` settings, e.g. ``{"max_connections": "200"}``.

    Raises:
        PostgresUnavailable: the server binaries or the ``postgres`` user are missing.
        RuntimeError: initdb, start or createdb failed (the message carries the server's output).
    """
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl); install postgresql or set MCPHIVE_PG_BIN"
        )
    folder = _prepare_folder()
    data, port = folder / "data", _free_port()
    options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(folder), **(_FAST if fast else {})}
    options.update(settings or {})
    flags = " ".join(f"-c {key}={value}" for key, value in options.items())
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
              "-o", f"-p {port} {flags}", "start"])  # fmt: skip
        started = True
        _run([str(bin_dir / "createdb"), "-h", str(folder), "-p", str(port), "-U", "postgres", database])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)
