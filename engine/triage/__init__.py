"""The triage wing: is a file movement a model leaving, how risky is it, which playbook runs.

This module is the wing's public face: users, the CLI, the docs and event-source plugins
import these names from `crownguard.engine.triage`, not from its modules.

    policy = load_policy("policy.yaml")               # None: the shipped defaults
    triage = build_triage(policy, host)               # playbooks, dedupe store, index
    for verdict in triage.triage(raw, claim=True):    # normalise -> detect -> score -> route
        verdict.playbooks, verdict.event_data, verdict.risk_data

    event = normalise(raw)                            # one ModelMovementEvent
    detection = detect(event, index=FingerprintIndex("fingerprints.sqlite"))
    risk = score(event, detection, policy, InMemoryHistory())   # score, level, reasons

Events: ModelMovementEvent (with Actor, FileInfo, Source, Destination, Device and the kinds
SourceKind, DestinationKind), its schema (SCHEMA_ID, event_schema, validate_event_dict,
event_from_dict), normalise, normalise_many and recognise; webhook mappings (WebhookMapping,
mapping_from_dict). For event-source mappers (see the `crownguard_register_event_sources`
hook): NormaliseOptions, DEFAULT_OPTIONS, parse_time, format_time and the classifiers
classify_source, classify_web_destination (with Category, a tool's site categories in
crownguard's words), domain_matches, url_host, SYNC_APP_DOMAINS.

Detection: detect, detect_content, detect_metadata, Detection, Method, ModelFormat,
MODEL_THRESHOLD, ContentSource; the fingerprint index FingerprintIndex, ModelVersionRef,
ModelMatch, RefreshReport.

Risk and policy: score, RiskScore, RiskLevel, Reason, LEVEL_RANK, History, HistoryFacts,
InMemoryHistory; Policy, HighRiskPeriod, load_policy, policy_from_mapping, default_policy_data.

Routing and the pipeline: build_triage, Triage, Verdict, leaves; Router, RouteDecision,
RoutingSettings, load_playbooks, shipped_playbooks_dir; DedupeStore, InMemoryDedupe,
ScratchDedupe, SQLiteDedupe, dedupe_key.

Errors (defined in crownguard.engine.errors): EventError, RoutingError, FingerprintIndexError.
"""

from ..errors import EventError, FingerprintIndexError, RoutingError
from .dedupe import DedupeStore, InMemoryDedupe, ScratchDedupe, SQLiteDedupe, dedupe_key
from .detection import (
    MODEL_THRESHOLD,
    ContentSource,
    Detection,
    Method,
    ModelFormat,
    detect,
    detect_content,
    detect_metadata,
)
from .detection.fingerprints import FingerprintIndex, ModelVersionRef, RefreshReport
from .detection.formats import ModelMatch
from .events import (
    SCHEMA_ID,
    Actor,
    Destination,
    DestinationKind,
    Device,
    FileInfo,
    ModelMovementEvent,
    NormaliseOptions,
    Source,
    SourceKind,
    WebhookMapping,
    event_from_dict,
    event_schema,
    format_time,
    mapping_from_dict,
    normalise,
    normalise_many,
    recognise,
    validate_event_dict,
)
from .events.classify import (
    DEFAULT_OPTIONS,
    SYNC_APP_DOMAINS,
    Category,
    classify_source,
    classify_web_destination,
    domain_matches,
    url_host,
)
from .events.model import parse_time
from .pipeline import Triage, Verdict, build_triage, leaves
from .policy import HighRiskPeriod, Policy, default_policy_data, load_policy, policy_from_mapping
from .risk import History, HistoryFacts, InMemoryHistory, score
from .risk.types import LEVEL_RANK, Reason, RiskLevel, RiskScore
from .router import RouteDecision, Router, RoutingSettings, load_playbooks, shipped_playbooks_dir

__all__ = [
    "DEFAULT_OPTIONS",
    "LEVEL_RANK",
    "MODEL_THRESHOLD",
    "SCHEMA_ID",
    "SYNC_APP_DOMAINS",
    "Actor",
    "Category",
    "ContentSource",
    "DedupeStore",
    "Destination",
    "DestinationKind",
    "Detection",
    "Device",
    "EventError",
    "FileInfo",
    "FingerprintIndex",
    "FingerprintIndexError",
    "HighRiskPeriod",
    "History",
    "HistoryFacts",
    "InMemoryDedupe",
    "InMemoryHistory",
    "Method",
    "ModelFormat",
    "ModelMatch",
    "ModelMovementEvent",
    "ModelVersionRef",
    "NormaliseOptions",
    "Policy",
    "Reason",
    "RefreshReport",
    "RiskLevel",
    "RiskScore",
    "RouteDecision",
    "Router",
    "RoutingError",
    "RoutingSettings",
    "SQLiteDedupe",
    "ScratchDedupe",
    "Source",
    "SourceKind",
    "Triage",
    "Verdict",
    "WebhookMapping",
    "build_triage",
    "classify_source",
    "classify_web_destination",
    "dedupe_key",
    "default_policy_data",
    "detect",
    "detect_content",
    "detect_metadata",
    "domain_matches",
    "event_from_dict",
    "event_schema",
    "format_time",
    "leaves",
    "load_playbooks",
    "load_policy",
    "mapping_from_dict",
    "normalise",
    "normalise_many",
    "parse_time",
    "policy_from_mapping",
    "recognise",
    "score",
    "shipped_playbooks_dir",
    "url_host",
    "validate_event_dict",
]
