"""A throwaway PostgreSQL server for the tests, from the distribution's own packages.

`PostgresServer.start()` finds `initdb`/`pg_ctl` (on PATH or under /usr/lib/postgresql/*/bin,
where Debian puts them); when there are none and this runs as root, it installs Debian's
`postgresql` package first (`apt-get install`, non-interactive). PostgreSQL refuses to run as
root, so as root the data directory is owned by, and the server run as, the `postgres` system
user the package creates (else `nobody`) through `runuser`. The server listens on 127.0.0.1 at
a free port, with password (SCRAM) authentication and a random password, so the tests see a
DSN with a secret in it, as a deployment does. `stop()` stops it and removes its files;
`halt(mode)` and `resume()` stop and start it again on the same port (fault tests).

`CROWNGUARD_TEST_POSTGRES=postgresql://...` uses a server that is already running instead.
Run alone (`python tests/pg_server.py`) it starts one, prints its DSN without the password and
stops it again: a quick check of the machine.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from debian_servers import Unavailable, apt_install, free_port, server_user

ENV_EXISTING = "CROWNGUARD_TEST_POSTGRES"
USER = "crownguard"
DATABASE = "crownguard_test"


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0)
    return candidates[-1] if candidates else None


def install_postgresql() -> None:
    """apt-get install postgresql (as root only), quietly and without questions."""
    apt_install("postgresql", "PostgreSQL is not installed (no initdb)", ENV_EXISTING,
                "postgresql://")


def _server_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    user = server_user("postgres", "nobody")
    if user is None:
        raise Unavailable("running as root, and there is no `postgres` or `nobody` user to "
                          "run PostgreSQL as (it refuses root)")
    return user


@dataclass
class PostgresServer:
    """One server: `dsn` (with the password), `password`, `admin_dsn` for making schemas."""

    dsn: str = ""
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    base: Path | None = None
    pg_ctl: str = ""
    user: pwd.struct_passwd | None = None
    startup_seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> PostgresServer:
        existing = os.environ.get(ENV_EXISTING)
        if existing:
            return cls(dsn=existing)
        if find_binary("initdb") is None:
            install_postgresql()
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise Unavailable("initdb or pg_ctl not found after installing postgresql")
        server = cls(password=secrets.token_urlsafe(18), port=free_port(), pg_ctl=pg_ctl,
                     user=_server_user())
        started = time.monotonic()
        server.base = Path(tempfile.mkdtemp(prefix="crownguard-pg-"))
        try:
            server._init(initdb)
            server._start()
            server.dsn = (f"postgresql://{USER}:{server.password}@127.0.0.1:{server.port}/"
                          f"{DATABASE}")
            server._create_database()
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - started
        return server

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    def _run(self, command: list[str]) -> None:
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              cwd=self.base)
        if done.returncode != 0:
            log = self.base / "log" if self.base else None
            detail = (done.stderr or done.stdout).strip()
            if log and log.exists():
                detail += " / " + " ".join(log.read_text().splitlines()[-5:])
            raise Unavailable(f"{Path(command[-1]).name if self.user is None else command[4]}"
                              f" failed: {detail.replace(self.password, '***')}")

    def _init(self, initdb: str) -> None:
        assert self.base is not None
        pwfile = self.base / "pw"
        pwfile.write_text(self.password)
        pwfile.chmod(0o600)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run([initdb, "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                   f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync"])
        pwfile.unlink()

    def _create_database(self) -> None:
        import psycopg

        admin = self.dsn.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def fresh_schema(self, name: str) -> str:
        """A DSN whose tables live in a new, empty schema `name` (one per test)."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        joiner = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{joiner}options=-csearch_path%3D{name}"

    def _start(self) -> None:
        assert self.base is not None
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.base / "log"), "-w",
                   "-t", "30", "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.base} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200", "start"])

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and keep its files (`mode` fast, or immediate: a crash, recovered
        at the next start); `resume()` starts it again on the same port."""
        assert self.base is not None and self.pg_ctl, "a server this module started"
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])

    def resume(self) -> None:
        assert self.base is not None and self.pg_ctl, "a server this module started"
        self._start()

    def stop(self) -> None:
        if self.base is None:
            return
        if self.pg_ctl and (self.data / "postmaster.pid").exists():
            try:
                self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w",
                           "stop"])
            except Unavailable:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


if __name__ == "__main__":
    server = PostgresServer.start()
    try:
        print(server.dsn.replace(server.password, "***") if server.password else "(given)",
              f"started in {server.startup_seconds:.1f} s")
    finally:
        server.stop()
