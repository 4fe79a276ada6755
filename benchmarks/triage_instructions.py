"""Instructions per event of triage, counted by valgrind: a figure other load cannot move.

    .venv/bin/python benchmarks/triage_instructions.py [--events 4000] [--stages]
        [--against DIR] [--feed 50000] [--warm 10000]

bench_triage.py times triage on one core; on a shared machine its figures move by 10-20%
from one run to the next, more than most changes to the hot path. This counts the CPU
instructions instead (valgrind's callgrind, `apt-get install valgrind`): the same code and
input give the same count to within a few hundred instructions an event, whatever else runs.

Each figure is one process that triages `--warm` events (caches and the people's history
filled as in a long feed) and then `--events` more, minus one that triages the warm events
only, divided by `--events`: the start-up, the imports and the input's generation cancel out.
The events are bench_triage's: its generator's month of a 500-person company, `--feed` events
long (bench_triage's 50,000 by default: the density sets how full each person's history is),
over its index of 5,000 registered hashes; the hash seed is fixed.

`--stages` counts the pipeline cut after each stage (normalise; detect; score, with the
history's facts and recorded into it) beside the whole of `Triage.triage_event` (which also
keeps the score, adds the detection to the event and routes it).
`--against DIR` counts a second checkout of crownguard (a `git worktree` of the commit to
compare with) in the same run and prints the change.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
STAGES = ("normalise", "detect", "score", "full")


def child(stage: str, feed: int, warm: int, events: int) -> None:
    """Triage `warm` then `events` of the generated events, cut after `stage`."""
    sys.path.insert(0, str(HERE.parent))
    import bench_triage

    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.triage import (
        InMemoryHistory,
        Router,
        Triage,
        detect,
        load_playbooks,
        normalise,
        policy_from_mapping,
        score,
        shipped_playbooks_dir,
    )

    registered = [hashlib.sha256(f"artifact-{i}".encode()).hexdigest() for i in range(5000)]
    raws = bench_triage.make_events(max(feed, warm + events), registered, 6)
    policy = policy_from_mapping({"registries": {"mlflow.acme.example": "mlflow"}})
    options = policy.options
    host = PluginHost.from_entry_points()
    sources = tuple(host.event_sources.values())
    with tempfile.TemporaryDirectory() as tmp:
        index = bench_triage.build_index(Path(tmp) / "fingerprints.sqlite", registered)
        playbooks = load_playbooks([shipped_playbooks_dir()], host.actions)
        triage = Triage(policy, Router(playbooks), index=index, history=InMemoryHistory(),
                        sources=sources)
        history = InMemoryHistory()

        def one(raw: dict[str, object]) -> None:
            event = normalise(raw, options=options, sources=sources)
            if stage == "full":
                triage.triage_event(event)
                return
            if stage == "normalise":
                return
            detection = detect(event, index=index)
            if stage == "detect":
                return
            history.record(event, detection, score(event, detection, policy, history))

        gc.collect()
        gc.freeze()  # the generated input, as bench_triage does
        try:
            for raw in raws[:warm + events]:
                one(raw)
        finally:
            gc.unfreeze()
            index.close()


def checkout_path(checkout: Path, scratch: Path) -> str:
    """A PYTHONPATH entry under which `crownguard` is the given checkout."""
    package = scratch / "crownguard"
    package.mkdir()
    for part in ("engine", "plugins", "playbooks"):
        (package / part).symlink_to(checkout / part)
    return str(scratch)


def counting(stage: str, feed: int, warm: int, events: int, pythonpath: str | None
             ) -> subprocess.Popen[str]:
    """The child under callgrind, started."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         str(HERE), "--child", stage, "--feed", str(feed), "--warm", str(warm),
         "--events", str(events)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def collected(process: subprocess.Popen[str], stage: str) -> int:
    _, err = process.communicate()
    found = re.search(r"Collected\s*:\s*(\d+)", err)
    if process.returncode != 0 or not found:
        raise SystemExit(f"valgrind failed for stage {stage}:\n{err[-2000:]}")
    return int(found.group(1))


def per_event(stage: str, feed: int, warm: int, events: int, pythonpath: str | None) -> int:
    """The two counts run side by side (valgrind runs one thread: two cores, half the wait)."""
    both = (counting(stage, feed, warm, events, pythonpath),
            counting(stage, feed, warm, 0, pythonpath))
    return (collected(both[0], stage) - collected(both[1], stage)) // events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--warm", type=int, default=10_000)
    parser.add_argument("--feed", type=int, default=50_000,
                        help="events in the generated month (bench_triage's 50,000)")
    parser.add_argument("--stages", action="store_true",
                        help="also count the pipeline cut after each stage")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="another checkout of crownguard to count beside this one")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.feed, args.warm, args.events)
        return 0
    if args.events < 1 or args.warm < 0 or args.feed < 1:
        parser.error("--events and --feed must be at least 1 and --warm at least 0")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    against = args.against.resolve() if args.against else None
    if against is not None and not (against / "engine" / "triage").is_dir():
        parser.error(f"--against {args.against}: not a crownguard checkout (no engine/triage)")
    stages = STAGES if args.stages else ("full",)
    print(f"instructions per event ({args.events} events after {args.warm} warm, of a "
          f"{args.feed}-event month; valgrind)", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        other = checkout_path(against, Path(scratch)) if against else None
        for stage in stages:
            here = per_event(stage, args.feed, args.warm, args.events, None)
            line = f"  {stage:<10} {here:>9,}"
            if other is not None:
                there = per_event(stage, args.feed, args.warm, args.events, other)
                line += f"   {against.name}: {there:,} ({(here - there) / there:+.1%})"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
