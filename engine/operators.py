"""Who did it: the operator recorded on every answer, cancellation, undo and rerun.

The CLI takes the operator from `--by`, else from the operating system's user; the service
passes its API token's name. Either way the name is checked here, once, so that the journal,
the audit trail and every screen that prints it hold a readable name and never a control
sequence, and `recorded_by()` adds where the name came from (the OS user behind a `--by`),
which is what an auditor asks next.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from typing import Any

from .errors import OperatorError

MAX_NAME = 200

def os_user() -> str:
    """The name of the OS account running this process; `uid N` when it has none (a
    container running as an unnamed uid)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no LOGNAME/USER and no passwd entry for the uid
        name = ""
    if name and _problem(name) is None:
        return name
    getuid = getattr(os, "getuid", None)
    return f"uid {getuid()}" if getuid is not None else "unknown user"


def _problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"holds a control character (U+{ord(char):04X})"
    return None


def operator_name(name: str, where: str = "--by") -> str:
    """`name` stripped, or an OperatorError naming `where` and what is wrong with it."""
    problem = _problem(name)
    if problem is not None:
        raise OperatorError(f"{where} {problem}: give the operator's name, as it should be "
                            "recorded")
    return name.strip()


def resolve_operator(by: str | None, where: str = "--by") -> str:
    """The operator of a command: `by` when given (checked), else the OS user."""
    return os_user() if by is None else operator_name(by, where)


def recorded_by(by: str, *, via: str | None = None) -> dict[str, Any]:
    """The details a run event carries about its operator: `by`, and `via` (how the name was
    established: `os user`, `--by as <os user>`, `token`...) when known."""
    return {"by": by, **({"via": via} if via else {})}


def cli_operator(by: str | None) -> tuple[str, str]:
    """The operator of a CLI command and how it is known: (`name`, `via`)."""
    user = os_user()
    if by is None:
        return user, "os user"
    name = operator_name(by)
    return name, ("os user" if name == user else f"--by, as os user {user}")
