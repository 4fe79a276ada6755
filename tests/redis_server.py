"""A throwaway Redis server for the tests, from the distribution's own package.

`RedisServer.start()` finds `redis-server` (on PATH or /usr/bin); when there is none and this
runs as root, it installs Debian's `redis-server` package first (`apt-get install`,
non-interactive). The server is run as an unprivileged user (as root: `redis`, the user the
package creates, else `nobody`, through `runuser`), listens on 127.0.0.1 at a free port with a
random password (`requirepass`), keeps an append-only file in its own directory (so a restart
keeps what was queued) and is stopped, its files removed, by `stop()`. `kill()` ends it with
SIGKILL and `restart()` starts it again on the same port and files: the fault tests' tools.

`CROWNGUARD_TEST_REDIS=redis://...` uses a server that is already running instead (kill and
restart are then not available). Run alone (`python tests/redis_server.py`) it starts one,
prints its URL without the password and stops it again.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from debian_servers import Unavailable, apt_install, free_port, server_user

ENV_EXISTING = "CROWNGUARD_TEST_REDIS"


def find_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None


def install_redis() -> None:
    """apt-get install redis-server (as root only), quietly and without questions."""
    apt_install("redis-server", "Redis is not installed (no redis-server)", ENV_EXISTING,
                "redis://")


def _server_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None for the current (non-root) user (Redis itself runs as
    root; only PostgreSQL refuses to)."""
    return server_user("redis", "nobody")


@dataclass
class RedisServer:
    """One server: `url` (with the password), `password`, `port`."""

    url: str = ""
    password: str = ""
    port: int = 0
    base: Path | None = None
    binary: str = ""
    user: pwd.struct_passwd | None = None
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0

    @classmethod
    def start(cls) -> RedisServer:
        existing = os.environ.get(ENV_EXISTING)
        if existing:
            return cls(url=existing)
        if find_server() is None:
            install_redis()
        binary = find_server()
        if binary is None:
            raise Unavailable("redis-server not found after installing redis-server")
        server = cls(password=secrets.token_urlsafe(18), port=free_port(), binary=binary,
                     user=_server_user())
        started = time.monotonic()
        server.base = Path(tempfile.mkdtemp(prefix="crownguard-redis-"))
        try:
            server._write_config()
            server._launch()
        except BaseException:
            server.stop()
            raise
        server.url = f"redis://:{server.password}@127.0.0.1:{server.port}/0"
        server.startup_seconds = time.monotonic() - started
        return server

    def _write_config(self) -> None:
        assert self.base is not None
        config = self.base / "redis.conf"
        # The password in a file readable by the server only, never in its arguments.
        config.write_text("\n".join([
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.base}", "daemonize no",
            "protected-mode yes", f"requirepass {self.password}", "appendonly yes",
            "appendfsync everysec", "save ''", "logfile redis.log", "databases 16", ""]))
        config.chmod(0o600)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
            os.chown(config, self.user.pw_uid, self.user.pw_gid)

    def _launch(self) -> None:
        assert self.base is not None
        command = [self.binary, str(self.base / "redis.conf")]
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        self.process = subprocess.Popen(command, cwd=self.base, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.base / "redis.log"
                tail = " / ".join(log.read_text().splitlines()[-3:]) if log.exists() else ""
                raise Unavailable(f"redis-server exited with {self.process.returncode}: "
                                  f"{tail.replace(self.password, '***')}")
            if self.ping():
                return
            time.sleep(0.05)
        raise Unavailable("redis-server did not answer within 20 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                answer = b""
                while answer.count(b"\r\n") < 2:
                    chunk = conn.recv(256)
                    if not chunk:
                        break
                    answer += chunk
                return b"+PONG" in answer
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: what was written to the append-only file is what is left."""
        if self.process is None:
            raise RuntimeError("a server given by CROWNGUARD_TEST_REDIS cannot be killed")
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start it again on the same port and files (after `kill`)."""
        self._launch()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


if __name__ == "__main__":
    server = RedisServer.start()
    try:
        print(server.url.replace(server.password, "***") if server.password else "(given)",
              f"started in {server.startup_seconds:.2f} s")
    finally:
        server.stop()
