"""The owner's forwarded credentials of a run, sealed for a resume nobody of theirs attends.

A run that stops for approval, or that another replica may take over, resumes later without
its owner on the line: an admin approves it, the expiry sweep rejects it, a replica takes it
over. It must never call upstreams with the credentials of whoever resumes it (an approver
decides, never lends). So the metadata the run forwards (per upstream, already filtered by
``forward_metadata``) is kept sealed: AES-256-GCM under a server key (``approvals.seal_key_env``
names the env var holding it, base64 of 32 bytes, the same on every replica), bound to the
run id and to an expiry as associated data, stored beside the run's request and replaced when
the run ends. Without a key nothing is sealed, and a resumed run forwards no metadata.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Per upstream name: the (key, value) metadata pairs its calls carry.
UpstreamMetadata = Mapping[str, Sequence[tuple[str, str]]]

_VERSION = 1


class Sealer:
    """Seals and opens a run's forwarded metadata with one server key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the seal key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        # Names the key without revealing it, so a replica with another key says so.
        self.key_id = hashlib.sha256(b"agentd-seal-key-id:" + key).hexdigest()[:12]

    @classmethod
    def from_env(cls, var: str, env: Mapping[str, str]) -> Sealer | None:
        """The sealer of ``approvals.seal_key_env`` (None when unset); a ValueError naming
        the key when the variable is missing or is not base64 of 32 bytes."""
        if not var:
            return None
        raw = env.get(var, "").strip()
        if not raw:
            raise ValueError(f"approvals.seal_key_env: the environment variable {var} is not set")
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"approvals.seal_key_env: ${var} is not base64 (make one with:"
                " python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')"
            ) from None
        if len(key) != 32:
            raise ValueError(
                f"approvals.seal_key_env: ${var} holds {len(key)} bytes; AES-256 needs 32"
            )
        return cls(key)

    def seal(
        self, run_id: str, metadata: UpstreamMetadata, expires_at: float | None
    ) -> dict[str, Any]:
        """The sealed form of ``metadata`` (JSON data, nothing of it in clear)."""
        plain = json.dumps({u: [list(p) for p in pairs] for u, pairs in metadata.items()})
        nonce = os.urandom(12)
        header = {"v": _VERSION, "kid": self.key_id, "exp": expires_at or 0}
        sealed = self._aead.encrypt(nonce, plain.encode(), _associated(run_id, header))
        return {**header, "blob": base64.b64encode(nonce + sealed).decode()}

    def open(
        self, run_id: str, sealed: Any, now: float | None = None
    ) -> dict[str, list[tuple[str, str]]] | None:
        """The metadata sealed for ``run_id``; None when absent, expired, sealed with another
        key, for another run, or altered."""
        if not isinstance(sealed, dict) or sealed.get("v") != _VERSION:
            return None
        if sealed.get("kid") != self.key_id:
            return None
        expires_at = sealed.get("exp") or 0
        if expires_at and (now if now is not None else time.time()) > expires_at:
            return None
        header = {"v": _VERSION, "kid": self.key_id, "exp": expires_at}
        try:
            data = base64.b64decode(str(sealed.get("blob", "")), validate=True)
            plain = self._aead.decrypt(data[:12], data[12:], _associated(run_id, header))
            value = json.loads(plain)
        except (binascii.Error, ValueError, InvalidTag):
            return None
        return {str(u): [(str(k), str(v)) for k, v in pairs] for u, pairs in value.items()}


def _associated(run_id: str, header: Mapping[str, Any]) -> bytes:
    """What the ciphertext is bound to: this run, this key and this expiry."""
    return f"agentd-sealed-credentials/v{header['v']}/{run_id}/{header['kid']}/{header['exp']!r}".encode()


__all__ = ["Sealer", "UpstreamMetadata"]
