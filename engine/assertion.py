"""Private-key JWT client assertions: an app proves who it is with a signed JWT instead of a
shared secret (RFC 7523 section 2.2, OpenID Connect `private_key_jwt`), as Entra ID and
Defender apps with a certificate and Okta service apps do.

The client side (`AssertionSigner`, built from a connection by `assertion_signer`) signs a
short-lived JWT: `iss` = `sub` = the client id, `aud` = the token endpoint, a fresh `jti`,
`iat`/`nbf` now and `exp` five minutes on; the header names the key by certificate
thumbprint (`x5t`, `x5t#S256`, what Entra looks keys up by) or by `kid` (Okta's JWKs). The
mock side (`verify_assertion`) checks one the way the vendors do, and says why it refuses.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import ConfigError
from .secrets import reveal


class _Connection(Protocol):
    """What a signer needs of a connection (config.Connection)."""

    name: str
    settings: dict[str, Any]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LIFETIME = 300  # seconds; Entra and Okta both refuse assertions valid for more than an hour
LEEWAY = 60  # the clock skew a verifier forgives
# The shared secrets a private key replaces: a connection authenticates one way.
SHARED_SECRETS = ("client_secret", "token")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

CLIENT_ASSERTION_SETTINGS: dict[str, Any] = {
    "private_key": {"type": "string", "minLength": 1,
                    "description": "the app's PEM private key (RSA, or EC P-256), unencrypted, by "
                                   "reference: ${file:keys/app.key}; signs the client assertion "
                                   "that replaces a client secret"},
    "certificate": {"type": "string", "minLength": 1,
                    "description": "the PEM certificate registered with the app (by reference, "
                                   "${file:keys/app.crt}); its thumbprint names the key"},
    "key_id": {"type": "string", "minLength": 1,
               "description": "the `kid` of the public key registered with the app"},
}


class KeyProblem(ValueError):
    """Why a key or certificate cannot be used (the message names no key material)."""


def load_private_key(pem: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise KeyProblem("the private key is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem("is not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyProblem(f"is an RSA key of {key.key_size} bits; at least 2048 are needed")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyProblem("is neither an RSA key nor an EC P-256 key")


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise KeyProblem("is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def thumbprints(certificate: x509.Certificate | str) -> dict[str, str]:
    """The `x5t` (SHA-1) and `x5t#S256` (SHA-256) thumbprints of a certificate (or of its
    PEM text), base64url."""
    if isinstance(certificate, str):
        certificate = load_certificate(certificate)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {"x5t": _b64(hashlib.sha1(der, usedforsecurity=False).digest()),
            "x5t#S256": _b64(hashlib.sha256(der).digest())}


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) \
        else "RS256"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _same_key(key: PrivateKey, certificate: x509.Certificate) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)


@dataclass
class AssertionSigner:
    """Signs the client assertions of one app."""

    client_id: str
    key: PrivateKey = field(repr=False)
    header: dict[str, str] = field(default_factory=dict)
    lifetime: int = LIFETIME

    def sign(self, audience: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience,
                  "jti": str(uuid.uuid4()), "iat": issued, "nbf": issued,
                  "exp": issued + self.lifetime}
        return jwt.encode(claims, self.key, algorithm=algorithm_of(self.key),
                          headers={"typ": "JWT", **self.header})


def signer_problems(settings: Mapping[str, Any], *, needs_certificate: bool = False
                    ) -> list[tuple[str, str]]:
    """(setting, problem) for a connection's private_key/certificate (none when usable)."""
    problems: list[tuple[str, str]] = []
    for shared in SHARED_SECRETS:
        if settings.get(shared) is not None:
            problems.append((shared, f"give {shared} or private_key, not both"))
    try:
        key = load_private_key(str(reveal(settings["private_key"])))
    except KeyProblem as exc:
        problems.append(("private_key", str(exc)))
        key = None
    if settings.get("certificate") is None:
        if needs_certificate:
            problems.append(("certificate", "private_key needs the certificate registered with "
                                            "the app (its thumbprint names the key)"))
        return problems
    try:
        certificate = load_certificate(str(reveal(settings["certificate"])))
    except KeyProblem as exc:
        return [*problems, ("certificate", str(exc))]
    if key is not None and not _same_key(key, certificate):
        problems.append(("certificate", "does not belong to private_key (their public keys "
                                        "differ)"))
    return problems


def assertion_signer(connection: _Connection, client_id: str, *,
                     thumbprint: str = "x5t#S256") -> AssertionSigner:
    """The signer of a connection's `private_key`, naming the key by its `certificate`'s
    thumbprint (`thumbprint`: `x5t#S256`, `x5t` or both, `x5t x5t#S256`) and by `key_id`."""
    settings = connection.settings
    problems = signer_problems(settings) if settings.get("private_key") is not None else [
        ("private_key", "is not set")]
    if problems:
        key_name, problem = problems[0]
        raise ConfigError(f"connection '{connection.name}': {key_name} {problem}")
    header: dict[str, str] = {}
    if settings.get("certificate") is not None:
        prints = thumbprints(load_certificate(str(reveal(settings["certificate"]))))
        header.update({name: prints[name] for name in thumbprint.split()})
    if settings.get("key_id"):
        header["kid"] = str(settings["key_id"])
    return AssertionSigner(client_id, load_private_key(str(reveal(settings["private_key"]))),
                           header)


# --- checking one, as a vendor does (the mocks) -------------------------------------------------


class AssertionRefused(Exception):
    """Why a verifier refuses an assertion: `reason` is one of malformed, unknown_key,
    bad_signature, issuer, audience, expired, not_yet_valid, replayed; `key_ref` is the
    thumbprint or kid the client named."""

    def __init__(self, reason: str, detail: str = "", key_ref: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.key_ref = reason, detail, key_ref


def public_key_of(pem: str) -> PublicKey:
    """A public key from a PEM certificate or a PEM public key."""
    if "CERTIFICATE" in pem:
        key: Any = load_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise KeyProblem("is neither an RSA nor an EC public key")
    return key


def verify_assertion(token: str, *, keys: Mapping[str, PublicKey], key_headers: tuple[str, ...],
                     audience: str, client_id: str, seen: set[str] | None = None,
                     now: float | None = None) -> dict[str, Any]:
    """The claims of a valid assertion; AssertionRefused otherwise. `keys` maps what the
    header may name the key by (`key_headers`: thumbprints, or `kid`) to the registered
    public key; a single registered key serves a header that names none."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AssertionRefused("malformed", "not a JWS compact serialisation") from None
    ref = next((str(header[h]) for h in key_headers if header.get(h)), "")
    if ref:
        key = keys.get(ref)
    else:
        key = next(iter(keys.values())) if len(set(map(id, keys.values()))) == 1 else None
    if key is None:
        raise AssertionRefused("unknown_key", "no registered key matches", ref)
    algorithm = algorithm_of(key)
    if header.get("alg") != algorithm:
        raise AssertionRefused("bad_signature", f"alg {header.get('alg')!r} is not {algorithm}",
                               ref)
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[algorithm], options={"verify_aud": False, "verify_exp": False,
                                                         "verify_nbf": False, "verify_iat": False})
    except jwt.InvalidSignatureError:
        raise AssertionRefused("bad_signature", "the signature does not verify", ref) from None
    except jwt.InvalidTokenError as exc:
        raise AssertionRefused("malformed", type(exc).__name__, ref) from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionRefused("issuer", "iss and sub must be the client id", ref)
    if claims.get("aud") != audience and not (isinstance(claims.get("aud"), list)
                                              and audience in claims["aud"]):
        raise AssertionRefused("audience", f"aud must be {audience}", ref)
    moment = time.time() if now is None else now
    try:
        expires, not_before = float(claims["exp"]), float(claims.get("nbf", 0))
    except (KeyError, TypeError, ValueError):
        raise AssertionRefused("malformed", "exp is missing or not a number", ref) from None
    if expires + LEEWAY < moment:
        raise AssertionRefused("expired", f"expired at {int(expires)}", ref)
    if not_before - LEEWAY > moment:
        raise AssertionRefused("not_yet_valid", f"not valid before {int(not_before)}", ref)
    jti = str(claims.get("jti") or "")
    if seen is not None:
        if not jti or jti in seen:
            raise AssertionRefused("replayed", "jti missing or already used", ref)
        seen.add(jti)
    return claims

