"""Where a file went and where it came from, as crownguard's few destination and source kinds.

Vendors describe destinations in their own words (Incydr: a category, a name, domains, an
account type); risk scoring needs one small vocabulary. The built-in domain lists cover the
common personal-mail, personal-cloud and generative-AI services; `NormaliseOptions` (usually
built from the policy file) adds an organisation's own registries and corporate domains.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from .model import DestinationKind, SourceKind

GENAI_DOMAINS = frozenset({
    "chatgpt.com", "chat.openai.com", "openai.com", "platform.openai.com", "claude.ai",
    "anthropic.com", "gemini.google.com", "bard.google.com", "aistudio.google.com",
    "copilot.microsoft.com", "perplexity.ai", "poe.com", "chat.mistral.ai", "huggingface.co",
    "chat.deepseek.com", "deepseek.com", "character.ai", "you.com", "pi.ai", "grok.com",
    "meta.ai", "replicate.com", "together.ai", "groq.com",
    # model hubs: publishing a model there is as much a leak as pasting it into a chat
    "modelscope.cn", "kaggle.com", "civitai.com", "ollama.com",
})
PERSONAL_EMAIL_DOMAINS = frozenset({
    "gmail.com", "mail.google.com", "googlemail.com", "outlook.com", "outlook.live.com",
    "hotmail.com", "live.com", "msn.com", "mail.yahoo.com", "mail.proton.me",
    "yahoo.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com",
    "gmx.com", "gmx.de", "mail.com", "yandex.com", "yandex.ru", "zoho.com", "qq.com",
    "163.com", "126.com", "tutanota.com", "fastmail.com", "web.de",
})
PERSONAL_CLOUD_NAMES = frozenset({
    "dropbox", "google drive", "onedrive", "icloud", "icloud drive", "box", "mega", "pcloud",
    "wetransfer", "sync.com", "mediafire", "baidu netdisk", "amazon drive", "sugarsync",
})
PERSONAL_CLOUD_DOMAINS = frozenset({
    "dropbox.com", "drive.google.com", "onedrive.live.com", "1drv.ms", "icloud.com",
    "mega.nz", "mega.io", "pcloud.com", "wetransfer.com", "box.com", "mediafire.com",
    "file.io", "sync.com",
})
GIT_DOMAINS = frozenset({"github.com", "gitlab.com", "bitbucket.org", "sourceforge.net"})
# An organisation's own tenant at a business service: mail and files stay in the company.
BUSINESS_MAIL_DOMAINS = frozenset({"outlook.office.com", "outlook.office365.com"})
BUSINESS_CLOUD_DOMAINS = frozenset({"sharepoint.com", "app.box.com", "ent.box.com"})
# Sync apps by name, for events that name the app but no host (trusted_domains can then
# still trust it: `dropbox.com` trusts the Dropbox app).
SYNC_APP_DOMAINS = {"dropbox": "dropbox.com", "onedrive": "onedrive.live.com",
                    "google drive": "drive.google.com", "icloud": "icloud.com",
                    "icloud drive": "icloud.com", "box": "box.com"}


def domain_matches(domain: str | None, domains: Container[str]) -> str | None:
    """The entry of `domains` that `domain` equals or is a subdomain of."""
    if not domain:
        return None
    for candidate in _candidates(domain):
        if candidate in domains:
            return candidate
    return None


@lru_cache(maxsize=8192)
def _candidates(domain: str) -> tuple[str, ...]:
    """mail.Example.com. -> (mail.example.com, example.com, com): the host and each parent,
    worked out once per host (triage asks about the same few hosts all day)."""
    host = domain.lower().strip().rstrip(".")
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split(":", 1)[0]
    candidates = []
    while host:
        candidates.append(host)
        if "." not in host:
            break
        host = host.split(".", 1)[1]
    return tuple(candidates)


@dataclass(frozen=True)
class NormaliseOptions:
    """What the organisation knows that a vendor event does not.

    registry_domains maps a host (mlflow.corp.example) to a registry name (mlflow);
    corporate_domains are the organisation's own (mail to them is not personal);
    trusted_domains are destinations the organisation trusts whatever the vendor says.
    """

    registry_domains: dict[str, str] = field(default_factory=dict)
    registry_paths: tuple[str, ...] = ("mlruns/", "mlartifacts/", "model-registry/")
    corporate_domains: frozenset[str] = frozenset()
    trusted_domains: frozenset[str] = frozenset()
    genai_domains: frozenset[str] = GENAI_DOMAINS
    personal_email_domains: frozenset[str] = PERSONAL_EMAIL_DOMAINS
    personal_cloud_domains: frozenset[str] = PERSONAL_CLOUD_DOMAINS

    def trusts(self, domain: str | None, url: str | None = None) -> bool:
        """Whether the policy trusts a destination: its host (or its URL's host) is (under) a
        trusted or corporate domain, or its URL is under a trusted `host/path` entry
        (github.com/acme trusts https://github.com/acme/... and git@github.com:acme/...)."""
        domain = domain or url_host(url)
        trusted, corporate = self.trusted_domains, self.corporate_domains
        if domain and (trusted or corporate):  # one walk up the host for both sets
            for candidate in _candidates(domain):
                if candidate in trusted or candidate in corporate:
                    return True
        if not url:
            return False
        return any(_under(url, entry) for entry in self.trusted_domains if "/" in entry)

    def registry_for(self, domains: Iterable[str | None]) -> str | None:
        for domain in domains:
            hit = domain_matches(domain, self.registry_domains)
            if hit:
                return self.registry_domains[hit]
        return None


DEFAULT_OPTIONS = NormaliseOptions()


def url_host(url: str | None) -> str | None:
    """The host of https://host/..., git@host:path or ssh://user@host/path.

    A URL with a scheme goes through urlsplit, so `https://[2001:db8::1]:8443/` is 2001:db8::1
    and `https://user:p@ss@host/` is host (the userinfo ends at the last `@`)."""
    if not url:
        return None
    if "://" in url:
        try:
            return urlsplit(url.strip()).hostname or None
        except ValueError:  # an unclosed `[` in the authority
            return None
    authority = url.split("/", 1)[0].rpartition("@")[2]  # git@host:path, host/path
    if authority.startswith("["):
        return authority[1:].partition("]")[0].lower() or None
    return authority.split(":", 1)[0].lower() or None


def _url_path(url: str) -> str:
    """The path of https://host/path (through urlsplit), git@host:path or host:port/path."""
    if "://" in url:
        try:
            return urlsplit(url.strip()).path
        except ValueError:
            return ""
    head, _, tail = url.partition("/")
    authority = head.rpartition("@")[2]
    if authority.startswith("["):
        authority = authority.partition("]")[2]
    first = authority.partition(":")[2]  # git@github.com:acme/repo.git, or host:port/path
    return tail if not first or first.isdigit() else f"{first}/{tail}"


def _under(url: str, entry: str) -> bool:
    """Whether a URL (https://host/path, git@host:path, ssh://git@host/path) lies under a
    `host/path` entry, comparing whole path segments."""
    want_host, _, want_path = entry.lower().strip("/").partition("/")
    if url_host(url) != want_host:
        return False
    have = [part for part in _url_path(url).lower().split("/") if part]
    want = [part for part in want_path.split("/") if part]
    return have[:len(want)] == want


class Category(StrEnum):
    """What the reporting tool says a site or app is, in crownguard's words: an event source
    maps its tool's own category names to these (the incydr plugin maps Incydr's)."""

    MAIL = "mail"
    CLOUD_STORAGE = "cloud-storage"
    BUSINESS_APP = "business-app"
    CODE_REPOSITORY = "code-repository"


def classify_web_destination(domains: list[str], name: str | None, category: Category | None,
                             options: NormaliseOptions) -> tuple[DestinationKind, str | None]:
    """A browser or app upload: gen-AI tool, mail or cloud (the company's own tenant or a
    personal one), git host or other web."""
    for domain in domains:
        if domain_matches(domain, options.genai_domains):
            return DestinationKind.GENAI_TOOL, domain
    for domain in domains:
        if domain_matches(domain, options.corporate_domains):
            kind = DestinationKind.EMAIL if category == Category.MAIL \
                else DestinationKind.CLOUD_SHARE
            return kind, domain
        if domain_matches(domain, BUSINESS_MAIL_DOMAINS):
            return DestinationKind.EMAIL, domain
        if domain_matches(domain, BUSINESS_CLOUD_DOMAINS):
            return DestinationKind.CLOUD_SHARE, domain
    for domain in domains:
        if domain_matches(domain, options.personal_email_domains):
            return DestinationKind.PERSONAL_EMAIL, domain
        if domain_matches(domain, options.personal_cloud_domains):
            return DestinationKind.PERSONAL_CLOUD, domain
        if domain_matches(domain, GIT_DOMAINS):
            return DestinationKind.WEB_UPLOAD, domain
    lowered = (name or "").lower()
    if any(word in lowered for word in ("chatgpt", "openai", "claude", "gemini", "copilot",
                                        "perplexity", "mistral", "deepseek")):
        return DestinationKind.GENAI_TOOL, domains[0] if domains else None
    if lowered in PERSONAL_CLOUD_NAMES or category == Category.CLOUD_STORAGE:
        return DestinationKind.PERSONAL_CLOUD, domains[0] if domains else None
    if category == Category.MAIL:
        return DestinationKind.PERSONAL_EMAIL, domains[0] if domains else None
    return DestinationKind.WEB_UPLOAD, domains[0] if domains else None


def classify_source(domains: list[str], directory: str | None, category: Category | None,
                    seen_in_cloud: bool, options: NormaliseOptions,
                    ) -> tuple[SourceKind, str | None]:
    """Registry (by domain or artifact path), cloud, share or endpoint; with the registry name.
    `seen_in_cloud`: the tool saw the file in a cloud service, not on an endpoint."""
    if domains and options.registry_domains:
        registry = options.registry_for(domains)
        if registry:
            return SourceKind.REGISTRY, registry
    if directory:
        path = directory.replace("\\", "/").lower()
        for marker in options.registry_paths:
            if marker in path:
                return SourceKind.REGISTRY, None
        if path.startswith(("//", "/mnt/", "/net/")):
            return SourceKind.SHARE, None
    if category in (Category.CLOUD_STORAGE, Category.BUSINESS_APP, Category.CODE_REPOSITORY):
        return SourceKind.CLOUD, None
    if seen_in_cloud:
        return SourceKind.CLOUD, None
    if domains:
        return SourceKind.WEB, None
    return SourceKind.ENDPOINT, None
