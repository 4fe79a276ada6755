"""What tests/pg_server.py and tests/redis_server.py share: installing a Debian package when
the server is missing (as root only, without questions, `apt-get update` once if the package
lists are missing), a free loopback port, and whom to run a server as when this is root."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


class Unavailable(Exception):
    """No server of the kind can be had here; the message says why (the tests skip with it)."""


def apt_install(package: str, what: str, env_existing: str, url: str) -> None:
    """apt-get install `package`; Unavailable naming `what` is missing (e.g. "PostgreSQL is
    not installed (no initdb)") and how else to get a server ($env_existing=url...)."""
    if os.geteuid() != 0:
        raise Unavailable(f"{what} and this is not root: install Debian's `{package}` "
                          f"package, or set {env_existing}={url}... to use a running server")
    if not shutil.which("apt-get"):
        raise Unavailable(f"{what} and there is no apt-get")
    done = apt_get_install(package)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"apt-get install {package} failed: {' / '.join(tail)}")


def apt_get_install(package: str, timeout: float | None = None
                    ) -> subprocess.CompletedProcess[str]:
    """`apt-get install -y package` (non-interactive, no recommends), after `apt-get update`
    when it fails (a fresh machine may have no package lists yet), under `apt_lock`: once
    another test process has installed it, it is a quick no-op."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    with apt_lock():
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=timeout, check=False)
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False)
    return done


@contextmanager
def apt_lock() -> Iterator[None]:
    """Held while apt-get runs: the test processes of `pytest -n` (pytest-xdist) each start
    their own servers, and two apt-get at once fail on dpkg's lock instead of waiting."""
    with open("/tmp/crownguard-tests-apt.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_user(*names: str) -> pwd.struct_passwd | None:
    """Whom to run a server as: None for the current (non-root) user, else the first of
    `names` that exists (None when none does)."""
    if os.geteuid() != 0:
        return None
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None
