"""Who is calling: a principal for every call, from authentication only.

The principal comes from, in this order:

1. a bearer token (``server.auth.bearer_tokens_env`` / ``bearer_tokens_file``), which maps to
   a principal id and roles;
2. a gateway's identity header (``server.auth.gateway_header``), honoured only when the call
   arrived over mTLS with the certificate of ``server.auth.gateway_identity``; anyone else
   sending that header is ignored and logged;
3. the mTLS client certificate: its subject CN, else its first DNS/URI SAN;
4. with auth off, ``anonymous``.

Nothing the caller writes in a request field or a plain header decides who they are.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agentd.config import AuthConfig

log = structlog.get_logger("agentd.api.identity")

ANONYMOUS = "anonymous"
ADMIN = "admin"
IMPERSONATE = "impersonate"


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str] = frozenset()
    via: str = "none"  # how it was authenticated: token, mtls, gateway, none

    @property
    def admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def may_impersonate(self) -> bool:
        return bool(self.roles & {ADMIN, IMPERSONATE})

    @property
    def anonymous(self) -> bool:
        return self.via == "none"


@dataclass(frozen=True)
class TokenEntry:
    token: bytes
    principal: Principal


def parse_token_entry(text: str) -> TokenEntry:
    """``TOKEN [PRINCIPAL [ROLE,ROLE]]``; fields split by whitespace (file) or ``:`` (env).

    A bare token (the old format) becomes ``token-<first 8 hex of its sha256>``, so two
    bare tokens are still two principals and the token itself is never the name.
    """
    parts = text.replace(":", " ").split()
    token = parts[0]
    name = parts[1] if len(parts) > 1 else "token-" + hashlib.sha256(token.encode()).hexdigest()[:8]
    roles = frozenset(r for r in (parts[2].split(",") if len(parts) > 2 else []) if r)
    return TokenEntry(token.encode(), Principal(name, roles, "token"))


def load_tokens(auth: AuthConfig, env: Mapping[str, str]) -> list[TokenEntry]:
    entries: list[TokenEntry] = []
    if auth.bearer_tokens_env:
        raw = env.get(auth.bearer_tokens_env, "")
        entries += [parse_token_entry(t) for t in raw.split(",") if t.strip()]
    if auth.bearer_tokens_file:
        lines = Path(auth.bearer_tokens_file).read_text().splitlines()
        entries += [
            parse_token_entry(line) for line in lines if line.strip() and not line.startswith("#")
        ]
    return entries


def auth_mode(auth: AuthConfig) -> str:
    """One line saying how callers are identified (``agentd config check`` prints it)."""
    parts = []
    if auth.bearer_tokens_env or auth.bearer_tokens_file:
        parts.append("bearer tokens")
    if auth.client_ca:
        parts.append("mTLS client certificates")
    if auth.gateway_header:
        parts.append(f"gateway header {auth.gateway_header!r} from {auth.gateway_identity!r}")
    tls = "TLS" if auth.tls_cert else "plaintext"
    if not parts:
        return f"auth: off ({tls}); every caller is '{ANONYMOUS}'"
    return f"auth: {' + '.join(parts)} ({tls})"


class Authenticator:
    def __init__(self, auth: AuthConfig, env: Mapping[str, str]) -> None:
        self.auth = auth
        self.tokens = load_tokens(auth, env)
        self.cert_roles = {k: frozenset(v) for k, v in auth.cert_roles.items()}

    @property
    def uses_tokens(self) -> bool:
        return bool(self.auth.bearer_tokens_env or self.auth.bearer_tokens_file)

    def token_principal(self, metadata: Sequence[tuple[str, Any]]) -> Principal | None:
        """The principal of the call's bearer token, or None when absent or unknown."""
        for key, value in metadata or ():
            if key != "authorization":
                continue
            raw = value.encode() if isinstance(value, str) else value
            if not raw.lower().startswith(b"bearer "):
                return None
            given = raw[7:].strip()
            # Compare against every token so timing does not reveal which one matched.
            hits = [e for e in self.tokens if hmac.compare_digest(given, e.token)]
            return hits[0].principal if hits else None
        return None

    def principal(self, metadata: Sequence[tuple[str, Any]], peer: Mapping[str, Any]) -> Principal:
        """The principal of a call that passed the transport's and the token check."""
        if self.uses_tokens:
            found = self.token_principal(metadata)
            if found is not None:
                return found
        cert_name = certificate_name(peer)
        header = self.auth.gateway_header.lower()
        if header:
            asserted = next((_text(v) for k, v in metadata or () if k == header), "")
            if asserted:
                if cert_name and cert_name == self.auth.gateway_identity:
                    roles = self.cert_roles.get(asserted, frozenset())
                    return Principal(asserted, roles, "gateway")
                log.warning(
                    "identity header ignored: not from the gateway",
                    header=header,
                    peer_certificate=cert_name or None,
                )
        if cert_name:
            return Principal(cert_name, self.cert_roles.get(cert_name, frozenset()), "mtls")
        return Principal(ANONYMOUS)


def certificate_name(peer: Mapping[str, Any]) -> str:
    """The client certificate's subject CN, else its first DNS or URI SAN, else ''."""
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = peer.get(key) or []
        for value in values:
            text = _text(value)
            if text and not _is_ip(text):
                return text
    return ""


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["ANONYMOUS", "Authenticator", "Principal", "auth_mode", "load_tokens"]
