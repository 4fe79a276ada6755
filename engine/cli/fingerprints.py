"""`crownguard fingerprints`: build, inspect and query the fingerprint index of registered
models without writing Python (docs/fingerprints.md).

    crownguard fingerprints refresh --config FILE [--registry NAME]... [--fingerprints FILE]
    crownguard fingerprints show [--fingerprints FILE] [--json]
    crownguard fingerprints match SHA256|FILE [--fingerprints FILE] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import UsageError
from ..plugins import PluginHost
from ..triage.detection.fingerprints import FingerprintIndex, ModelVersionRef
from ..triage.detection.structure import HEAD_LIMIT, fingerprint_content
from ..triage.respond import open_fingerprint_index
from ..triage.scenarios import REGISTRY_ACTIONS, refresh_registry
from .console import printable

DEFAULT_INDEX = "fingerprints.sqlite"
EXIT_OK, EXIT_NONE = 0, 1
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
HASH_CHUNK = 1 << 20


def registry_plugins(host: PluginHost) -> list[str]:
    """The plugins that offer both registry actions (mlflow, huggingface, ...)."""
    names = {a.split(".", 1)[0] for a in host.actions}
    return sorted(n for n in names if all(f"{n}.{a}" in host.actions for a in REGISTRY_ACTIONS))


def cmd_refresh(args: argparse.Namespace) -> int:
    host = PluginHost.from_entry_points()
    known = registry_plugins(host)
    config = load_config(args.config, host.connection_types)
    try:
        wanted = args.registry or [n for n in known if n in config.connections]
        unknown = [r for r in wanted if r not in known]
        if unknown:
            raise UsageError(f"--registry {unknown[0]}: not a model registry plugin here "
                             f"(registries: {', '.join(known) or 'none'})")
        if not wanted:
            raise UsageError(f"{args.config}: no connection for a model registry "
                             f"({', '.join(known)}); add one or give --registry")
        missing = [r for r in wanted if r not in config.connections]
        if missing:
            raise UsageError(f"{args.config}: no '{missing[0]}' connection for --registry "
                             f"{missing[0]}")
        status = EXIT_OK
        with FingerprintIndex(args.fingerprints) as index:
            for registry in wanted:
                report = refresh_registry(index, host, config, registry,
                                          head_bytes=args.head_bytes, prune=not args.keep,
                                          force=args.force,
                                          progress=_progress(registry))
                _end_progress()
                print(printable(f"{registry}: {report.versions} versions listed; "
                                f"{report.summary()}"))
                for label in report.added:
                    print(printable(f"  added    {label}"))
                for label in report.changed:
                    print(printable(f"  changed  {label}"))
                for label in report.removed:
                    print(printable(f"  removed  {label}"))
                for label, error in report.errors.items():
                    print(printable(f"  failed   {label}: {error}"), file=sys.stderr)
                    status = EXIT_NONE
    finally:
        config.connections.close()
    return status


_TTY = {"open": False}


def _progress(registry: str) -> Any:
    def show(done: int, total: int, ref: ModelVersionRef) -> None:
        line = printable(f"{registry}: listing files {done}/{total}: {ref.model} v{ref.version}")
        if sys.stderr.isatty():
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
            _TTY["open"] = True
        else:
            print(line, file=sys.stderr, flush=True)

    return show


def _end_progress() -> None:
    if _TTY["open"]:
        print(file=sys.stderr)
        _TTY["open"] = False


def cmd_show(args: argparse.Namespace) -> int:
    with open_fingerprint_index(Path(args.fingerprints), "--fingerprints") as index:
        versions, files, structures = index.versions(), index.files(), index.structures()
    if args.json:
        print(json.dumps({"versions": [{"registry": v.registry, "model": v.model,
                                        "version": v.version, "sensitivity": v.sensitivity,
                                        "stamp": v.stamp} for v in versions],
                          "files": files, "structures": structures}, indent=2))
        return EXIT_OK
    registries = Counter(v.registry for v in versions)
    models = {(v.registry, v.model) for v in versions}
    print(f"{args.fingerprints}: {len(registries)} registries, {len(models)} models, "
          f"{len(versions)} versions, {len(files)} files, {len(structures)} structural "
          "fingerprints")
    by_version: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in files:
        by_version.setdefault((item["registry"], item["model"], item["version"]), []).append(item)
    shapes = {(s["registry"], s["model"], s["version"], s["path"]): s for s in structures}
    for v in versions:
        tag = f", {v.sensitivity}" if v.sensitivity else ""
        held = by_version.get((v.registry, v.model, v.version), [])
        print(printable(f"{v.registry}  {v.model} v{v.version}{tag}  ({len(held)} files)"))
        for item in held:
            shape = shapes.get((v.registry, v.model, v.version, item["path"]))
            note = f"  {shape['format']}, {shape['tensors']} tensors" if shape else ""
            print(printable(f"    {item['sha256'][:12]}  {item['path']}{note}"))
    return EXIT_OK


def cmd_match(args: argparse.Namespace) -> int:
    target = args.target
    path = Path(target)
    if _SHA256.match(target) and not path.is_file():
        digest, fingerprint = target.lower(), None
    elif path.is_file():
        digest = _sha256_of(path)
        fingerprint = fingerprint_content(path)
    else:
        raise UsageError(f"{target}: neither a SHA-256 (64 hex digits) nor a file")
    with open_fingerprint_index(Path(args.fingerprints), "--fingerprints") as index:
        exact = index.lookup(digest)
        structural = None if exact else index.match_structure(fingerprint)
    if args.json:
        print(json.dumps({"sha256": digest, "matches": [m.to_dict() for m in exact],
                          "structure": structural.to_dict() if structural else None,
                          "tensors": len(fingerprint.tensors) if fingerprint else None},
                         indent=2))
    else:
        for match in exact:
            print(printable(f"SHA-256 matches registered {match.describe()}"))
        if structural is not None:
            print(printable(f"tensor structure: {structural.describe()}"))
        if not exact and structural is None:
            what = (f"; its {len(fingerprint.tensors)} tensors match no registered file"
                    if fingerprint else "")
            print(printable(f"no registered model has SHA-256 {digest}{what}"))
    return EXIT_OK if exact or structural else EXIT_NONE


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _head_bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= value <= HEAD_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {HEAD_LIMIT}")
    return value


def add_commands(sub: Any) -> None:
    """Register `fingerprints refresh|show|match` on the `crownguard` subparsers."""
    group = sub.add_parser("fingerprints", help="build, show and query the fingerprint index "
                                                "of registered models")
    commands = group.add_subparsers(dest="fingerprints_command", required=True,
                                    parser_class=type(group))

    def index_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--fingerprints", metavar="FILE", default=DEFAULT_INDEX,
                       help=f"the fingerprint index (default {DEFAULT_INDEX})")

    p = commands.add_parser("refresh", help="index the versions and files new or changed in "
                                            "the registries since the last refresh")
    p.add_argument("--config", metavar="FILE", required=True, help="the connections file")
    p.add_argument("--registry", action="append", metavar="NAME",
                   help="a registry plugin (mlflow, huggingface); repeatable; default: every "
                        "one the connections file has a connection for")
    index_option(p)
    p.add_argument("--head-bytes", type=_head_bytes, default=HEAD_LIMIT, metavar="N",
                   help="bytes read from the start of each model file for its structural "
                        f"fingerprint (default {HEAD_LIMIT}; 0: none)")
    p.add_argument("--force", action="store_true",
                   help="list every version's files again (an index built before structural "
                        "fingerprints gets them)")
    p.add_argument("--keep", action="store_true",
                   help="keep versions the registry no longer lists (default: remove them)")
    p.set_defaults(func=cmd_refresh)

    p = commands.add_parser("show", help="what the index holds: registries, models, "
                                         "versions, files, structural fingerprints")
    index_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = commands.add_parser("match", help="is this hash or file a registered model? (exit 0 "
                                          "on a match, 1 on none)")
    p.add_argument("target", metavar="SHA256|FILE")
    index_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_match)
