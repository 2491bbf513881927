"""A throwaway PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl) for the store's tests.

``AGENTD_TEST_POSTGRES_URL`` uses an existing server instead (then it cannot be restarted).
As root, the cluster runs as the ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Postgres:
    url: str
    bin_dir: Path | None = None  # None: an external server, not ours to restart
    data: Path = Path()
    port: int = 0
    prefix: list[str] = field(default_factory=list)  # runuser -u postgres -- when root

    def pg_ctl(self, *args: str, check: bool = True) -> None:
        if self.bin_dir is None:
            pytest.skip("AGENTD_TEST_POSTGRES_URL is an external server: cannot restart it")
        base = self.data.parent
        options = f"-p {self.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data)]
        if args[0] in ("start", "restart"):  # -w: returns once the server accepts connections
            command += ["-o", options, "-l", str(base / "log"), "-w"]
        subprocess.run([*command, *args], check=check, capture_output=True)

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")  # fast: open sessions are disconnected, as in failover

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def throwaway_postgres() -> Iterator[Postgres]:
    """Yields a running server (a fixture body), or skips saying why there is none."""
    pytest.importorskip(
        "psycopg_pool", reason="psycopg is not installed (pip install 'agentd[postgres]')"
    )
    if os.environ.get("AGENTD_TEST_POSTGRES_URL"):
        yield Postgres(os.environ["AGENTD_TEST_POSTGRES_URL"])
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="agentd-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
        if runuser is None:
            pytest.skip("running as root without runuser to start the server as postgres")
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    port = _free_port()
    server = Postgres(f"postgresql://agentd@127.0.0.1:{port}/postgres", bin_dir, base / "data")
    server.port, server.prefix = port, prefix
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(server.data), "-U", "agentd", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(base, ignore_errors=True)
