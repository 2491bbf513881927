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

from agentd.config import AuthConfig, ConfigError
from agentd.runs.spec import ANONYMOUS, Principal

log = structlog.get_logger("agentd.api.identity")


@dataclass(frozen=True)
class TokenEntry:
    token: bytes
    principal: Principal


MIN_TOKEN_CHARS = 16


def parse_token_entry(text: str, where: str = "entry") -> TokenEntry:
    """``TOKEN [PRINCIPAL [ROLE,ROLE]]``: fields separated by whitespace only.

    A ``:`` never splits (a token may contain one), so an entry cannot be misread. A bare token
    becomes ``token-<first 8 hex of its sha256>``, so two bare tokens are still two principals
    and the token itself is never the name. ``where`` names the entry in errors, which never
    quote the token.
    """
    parts = text.split()
    if len(parts) > 3:
        raise ConfigError(
            f"{where}: {len(parts)} fields; write TOKEN PRINCIPAL ROLE,ROLE (at most 3 fields, "
            "separated by spaces; roles separated by ',' without spaces)"
        )
    token = parts[0]
    if len(parts) == 1 and token.count(":") >= 1:
        raise ConfigError(
            f"{where}: looks like the old TOKEN:PRINCIPAL:ROLE form, which cannot be read "
            "unambiguously; separate fields with spaces: TOKEN PRINCIPAL ROLE,ROLE"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{where}: the token is too short; a token needs at least {MIN_TOKEN_CHARS} "
            "characters (e.g. `openssl rand -hex 24`)"
        )
    name = parts[1] if len(parts) > 1 else "token-" + hashlib.sha256(token.encode()).hexdigest()[:8]
    roles = parts[2].split(",") if len(parts) > 2 else []
    if any(not r for r in roles):
        raise ConfigError(f"{where}: an empty role; write roles as ROLE,ROLE")
    return TokenEntry(token.encode(), Principal(name, frozenset(roles), "token"))


def _check_tokens(entries: Sequence[tuple[str, TokenEntry]]) -> None:
    """No token twice, and no token equal to any principal or role name (guessable)."""
    names = {e.principal.id for _, e in entries} | {
        r for _, e in entries for r in e.principal.roles
    }
    seen: set[bytes] = set()
    for where, entry in entries:
        if entry.token in seen:
            raise ConfigError(f"{where}: this token is listed twice; give each principal its own")
        seen.add(entry.token)
        if entry.token.decode() in names:
            raise ConfigError(
                f"{where}: the token equals a principal or role name; use a random token"
            )


def load_tokens(auth: AuthConfig, env: Mapping[str, str]) -> list[TokenEntry]:
    """The configured tokens; a malformed entry is a ConfigError naming where it is.

    Environment (``bearer_tokens_env``): entries separated by ``;`` or newlines. File
    (``bearer_tokens_file``): one entry per line, ``#`` starts a comment line. Both:
    ``TOKEN PRINCIPAL ROLE,ROLE`` with fields separated by whitespace.
    """
    entries: list[tuple[str, TokenEntry]] = []
    if auth.bearer_tokens_env:
        raw = env.get(auth.bearer_tokens_env, "")
        items = [t for t in raw.replace("\n", ";").split(";") if t.strip()]
        for number, item in enumerate(items, 1):
            where = f"${auth.bearer_tokens_env}: entry {number}"
            entries.append((where, parse_token_entry(item, where)))
    if auth.bearer_tokens_file:
        path = auth.bearer_tokens_file
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                where = f"{path}: line {number}"
                entries.append((where, parse_token_entry(line, where)))
    _check_tokens(entries)
    return [e for _, e in entries]


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
