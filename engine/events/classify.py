"""Where a file went and where it came from, as crownguard's few destination and source kinds.

Vendors describe destinations in their own words (Incydr: a category, a name, domains, an
account type); risk scoring needs one small vocabulary. The built-in domain lists cover the
common personal-mail, personal-cloud and generative-AI services; `NormaliseOptions` (usually
built from the policy file) adds an organisation's own registries and corporate domains.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from .model import DestinationKind, SourceKind

GENAI_DOMAINS = frozenset({
    "chatgpt.com", "chat.openai.com", "openai.com", "platform.openai.com", "claude.ai",
    "anthropic.com", "gemini.google.com", "bard.google.com", "aistudio.google.com",
    "copilot.microsoft.com", "perplexity.ai", "poe.com", "chat.mistral.ai", "huggingface.co",
    "chat.deepseek.com", "deepseek.com", "character.ai", "you.com", "pi.ai", "grok.com",
    "meta.ai", "replicate.com", "together.ai", "groq.com",
})
PERSONAL_EMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
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


def domain_matches(domain: str | None, domains: Container[str]) -> str | None:
    """The entry of `domains` that `domain` equals or is a subdomain of."""
    if not domain:
        return None
    host = domain.lower().strip().rstrip(".")
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split(":", 1)[0]
    while host:
        if host in domains:
            return host
        if "." not in host:
            return None
        host = host.split(".", 1)[1]
    return None


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

    def registry_for(self, domains: Iterable[str | None]) -> str | None:
        for domain in domains:
            hit = domain_matches(domain, self.registry_domains)
            if hit:
                return self.registry_domains[hit]
        return None


DEFAULT_OPTIONS = NormaliseOptions()


def classify_web_destination(domains: list[str], name: str | None, category: str | None,
                             options: NormaliseOptions) -> tuple[DestinationKind, str | None]:
    """A browser or app upload: gen-AI tool, personal mail or cloud, git host or other web."""
    for domain in domains:
        if domain_matches(domain, options.genai_domains):
            return DestinationKind.GENAI_TOOL, domain
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
    if lowered in PERSONAL_CLOUD_NAMES or category == "Cloud Storage":
        return DestinationKind.PERSONAL_CLOUD, domains[0] if domains else None
    if category == "Email":
        return DestinationKind.PERSONAL_EMAIL, domains[0] if domains else None
    return DestinationKind.WEB_UPLOAD, domains[0] if domains else None


def classify_source(domains: list[str], directory: str | None, category: str | None,
                    observer: str | None, options: NormaliseOptions,
                    ) -> tuple[SourceKind, str | None]:
    """Registry (by domain or artifact path), cloud, share or endpoint; with the registry name."""
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
    if category in ("Cloud Storage", "Business Tools", "Source Code Repository"):
        return SourceKind.CLOUD, None
    if observer and observer != "Endpoint":
        return SourceKind.CLOUD, None
    if domains:
        return SourceKind.WEB, None
    return SourceKind.ENDPOINT, None
