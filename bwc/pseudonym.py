"""Pseudonymous officer ids: a keyed hash whose key stays with the department.

A plain hash of a badge number is no pseudonym: badge numbers are few and guessable, so anyone could hash them all
and match. HMAC-SHA256 under a secret key is not reversible without the key, and the same officer always gets the
same pseudonym, so researchers can still follow an officer across encounters. The key is created once, with
owner-only permissions, in the store (``STORE/secrets/pseudonym.key``) or where configured; it never goes into an
export.

Example
-------
>>> keyed = Pseudonymizer(b"0" * 32)
>>> keyed("B7")
'officer-5cf25b4383'
>>> keyed("B7") == keyed("B7") and keyed("B7") != keyed("B8")
True
>>> keyed(None) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32  # 256-bit HMAC key
PSEUDONYM_HEX = 10  # 40 bits: collisions stay unlikely up to hundreds of thousands of officers
PREFIX = "officer-"
DEFAULT_KEY_FILE = Path("secrets") / "pseudonym.key"  # inside the store
KIND_SEPARATOR = "\x1f"  # between a pseudonym's kind and the id, so an officer "E1" and an encounter "E1" differ


class Pseudonymizer:
    """Maps identifiers to stable pseudonyms under one key.

    Parameters
    ----------
    key
        The secret key (at least 16 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key needs at least 16 bytes")
        self._key = key

    def __call__(self, identifier: str | None) -> str | None:
        if identifier is None or identifier == "":
            return None
        digest = hmac.new(self._key, str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:PSEUDONYM_HEX]

    def of(self, kind: str, identifier: str | None) -> str | None:
        """``<kind>-<10 hex digits>`` for another kind of id (encounter, recording), keyed apart from officers."""
        if identifier is None or identifier == "":
            return None
        keyed = self(f"{kind}{KIND_SEPARATOR}{identifier}")
        return f"{kind}-{str(keyed).removeprefix(PREFIX)}"

    @classmethod
    def from_key_file(cls, path: Path) -> Pseudonymizer:
        """The key in ``path``, created (owner read/write only) when it does not exist yet."""
        return cls(load_or_create_key(path))


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, or create it atomically with a fresh random key (never overwriting an existing one)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            # O_EXCL: two processes starting at once must not end up with two different keys.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    text = path.read_text().strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a pseudonym key (expected hex digits)") from None


def store_pseudonymizer(store_root: Path, key_file: str | None = None) -> Pseudonymizer:
    """The store's pseudonymizer: ``key_file`` when configured, else ``STORE/secrets/pseudonym.key``."""
    return Pseudonymizer.from_key_file(Path(key_file) if key_file else Path(store_root) / DEFAULT_KEY_FILE)
