"""The embedding API: what a program that drives crownguard uses, and a plugin never does.

The CLI, the service, tests and docs build on these names: the plugin host, the connections
file, playbook loading, the runner and the journal. Plugins import `crownguard.engine` only
(its `__all__`, the plugin API); a test keeps them off this module.

    host = PluginHost.from_entry_points()
    config = load_config("connections.yaml", host.connection_types)
    playbook = load_playbook("my-playbook.yaml", host.actions)
    journal = open_journal("runs.db")
    try:
        record = Runner(host, config, journal=journal).run(playbook, event={...})
    finally:
        journal.close()
"""

from __future__ import annotations

from .config import config_from_mapping, load_config
from .journal import Journal, SQLiteJournal, open_journal
from .plugins import PluginHost
from .runner import Runner
from .spec import Playbook, load_playbook, parse_playbook

__all__ = [
    "Journal",
    "Playbook",
    "PluginHost",
    "Runner",
    "SQLiteJournal",
    "config_from_mapping",
    "load_config",
    "load_playbook",
    "open_journal",
    "parse_playbook",
]
