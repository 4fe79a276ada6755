"""The quarantine record, kept on the model version itself as tags.

Keeping what quarantine removed at the vendor, not in the run that removed it, is what makes
release exact from any later run (or by hand), and makes a retried or resumed quarantine
continue the first attempt's record instead of mistaking its own work for the original state.
The record is written before anything is removed, so an interrupted quarantine still leaves
enough behind to undo what it did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MARK_TAG = "crownguard.quarantined"
RUN_TAG = "crownguard.quarantine.run_id"
REASON_TAG = "crownguard.quarantine.reason"
RECORD_TAG = "crownguard.quarantine.record"
# Written in this order and removed in the reverse one: the record is the first tag on and the
# last off, so whatever an interruption leaves behind can still be released or cleaned up.
ALL_TAGS = (RECORD_TAG, RUN_TAG, REASON_TAG, MARK_TAG)
# Older MLflow servers cap model-version tag values at 5,000 characters.
MAX_TAG_VALUE = 5000
MAX_REASON = 1000
RECORD_VERSION = 1


class RecordError(ValueError):
    """The record tag on a version is not one this plugin wrote (or it was damaged)."""


@dataclass
class AccessChange:
    """A user's own permission on the model before quarantine (None: they had no grant of
    their own and the server's default applied), and the auth API that holds it."""

    user: str
    api: str
    previous: str | None

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "api": self.api, "previous": self.previous}


@dataclass
class QuarantineRecord:
    run_id: str
    reason: str
    at: str
    aliases: list[str] = field(default_factory=list)
    access: list[AccessChange] = field(default_factory=list)
    # The idempotency key of the step that wrote it: its retries continue its work.
    step_key: str = ""

    def access_for(self, user: str) -> AccessChange | None:
        return next((a for a in self.access if a.user == user), None)

    def tags(self) -> dict[str, str]:
        """The tags that hold this record (MLflow tag values are strings)."""
        record = json.dumps({"v": RECORD_VERSION, "at": self.at, "aliases": sorted(self.aliases),
                             "access": [a.to_json() for a in self.access],
                             "step": self.step_key},
                            sort_keys=True, separators=(",", ":"))
        if len(record) > MAX_TAG_VALUE:
            raise RecordError(f"the quarantine record would be {len(record)} characters, over "
                              f"MLflow's {MAX_TAG_VALUE}")
        return {RECORD_TAG: record, RUN_TAG: self.run_id, REASON_TAG: self.reason[:MAX_REASON],
                MARK_TAG: "true"}

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "reason": self.reason, "quarantined_at": self.at,
                "aliases": sorted(self.aliases), "access": [a.to_json() for a in self.access]}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> QuarantineRecord | None:
        """The record on a version, None when it is not quarantined."""
        raw = tags.get(RECORD_TAG)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != RECORD_VERSION:
                raise RecordError(f"unknown record format (v={data.get('v')!r})"
                                  if isinstance(data, dict) else "not a JSON object")
            aliases = [str(a) for a in data.get("aliases") or []]
            access = [AccessChange(str(a["user"]), str(a["api"]),
                                   None if a.get("previous") is None else str(a["previous"]))
                      for a in data.get("access") or []]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordError(f"tag {RECORD_TAG} is damaged ({exc}); release by hand and delete "
                              "the crownguard.* tags") from None
        return cls(run_id=tags.get(RUN_TAG, ""), reason=tags.get(REASON_TAG, ""),
                   at=str(data.get("at", "")), aliases=aliases, access=access,
                   step_key=str(data.get("step", "")))


def tag_map(version: dict[str, Any]) -> dict[str, str]:
    """A model version's tags as a dict (the REST answer lists `{key, value}` pairs and leaves
    the list out when there are none)."""
    return {str(t["key"]): str(t.get("value", "")) for t in version.get("tags") or []
            if isinstance(t, dict) and "key" in t}
