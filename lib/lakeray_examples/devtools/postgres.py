"""A throwaway PostgreSQL server on loopback: initdb, pg_ctl start, a database, a password.

It runs Debian's postgresql binaries (installed by cluster/install.sh). As root, the server
runs as the `postgres` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: run `make install` (installs Debian's postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    def __init__(self, database: str = "lakeray", user: str = "lakeray"):
        self.bin = _bin_dir()
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.dir = Path(tempfile.mkdtemp(prefix="lakeray-pg-"))
        self.data = self.dir / "data"
        self._as_root = os.geteuid() == 0

    # -- process helpers
    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> "LocalPostgres":
        os.chmod(self.dir, 0o755)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-E", "UTF8", "--no-sync",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
        pwfile.unlink()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "start")
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        log.info("PostgreSQL started on %s:%d (data %s)", self.host, self.port, self.data)
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError as exc:
                log.warning("stopping PostgreSQL: %s", exc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- how clients reach it
    def conninfo(self, database: str | None = None) -> str:
        return (f"host={self.host} port={self.port} dbname={database or self.database} "
                f"user={self.user} password={self.password}")

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def env(self, prefix: str = "LAKERAY_BILLING") -> dict[str, str]:
        """Environment variables for a spec connection named with `prefix` (see pipelines/churn.yaml)."""
        return {f"{prefix}_JDBC_URL": self.jdbc_url, f"{prefix}_USER": self.user, f"{prefix}_PASSWORD": self.password}
