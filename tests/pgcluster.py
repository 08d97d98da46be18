"""A throw-away PostgreSQL cluster for tests and benchmarks: Debian's server binaries, a private
temporary directory, a UNIX socket only (no TCP port: ``listen_addresses=''``), torn down after.

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` user
the Debian package creates (else ``nobody``) through ``runuser``. Authentication is ``trust`` on
the socket, which lives in a 0700 directory owned by that user: only root and that user reach it.

    with PgCluster.start() as pg:
        url = pg.create_database("t1")       # postgresql:///t1?host=/tmp/vbench-pg-.../&user=vbench
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "vbench"


def process_running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 on these machines reaps orphans late)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def server_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb and pg_ctl, else None."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    found = [d / "bin" for d in root.iterdir()
             if (d / "bin" / "initdb").exists() and (d / "bin" / "pg_ctl").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
               default=None)


class PgCluster:
    def __init__(self, base: Path, bindir: Path, user: str | None) -> None:
        self.base, self.bindir, self.user = base, bindir, user
        self.data = base / "data"

    # -- life cycle ---------------------------------------------------------------------------
    @classmethod
    def start(cls) -> "PgCluster":
        bindir = server_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
        user = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
        base = Path(tempfile.mkdtemp(prefix="vbench-pg-"))
        if user:
            pw = pwd.getpwnam(user)
            os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o700)
        pg = cls(base, bindir, user)
        try:
            pg._run("initdb", "-D", str(pg.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions")
            pg._run("pg_ctl", "-D", str(pg.data), "-l", str(base / "server.log"), "-w", "-t", "60",
                    "-o", f"-c listen_addresses='' -c unix_socket_directories='{base}' "
                          f"-c fsync=off -c max_connections=20", "start")
        except BaseException:
            pg.stop()
            raise
        return pg

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop",
                      check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.base)
        if check and cp.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({cp.returncode}): {cp.stderr[-2000:]}\n{tail}")
        return cp

    # -- databases ----------------------------------------------------------------------------
    def url(self, db: str = "postgres") -> str:
        return f"postgresql:///{db}?host={self.base}&user={SUPERUSER}"

    def sql(self, statement: str, db: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])
