"""The service wing: `crownguard serve`, one long-running process over the journal.

It takes signed events in (`intake`), triages and responds in the background, settles waits
at their deadline and takes over runs a crashed process left, and shows and controls runs over
an HTTP API (`app`) that calls the same operations as the CLI (`crownguard.engine.runs`).
Its settings are the connections file's `service` section (`settings`). See docs/service.md.
"""
