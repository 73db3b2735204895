"""Encrypted secrets of the app's environments (``fastmango secrets``).

Values are sealed with AES-256-GCM (``cryptography``) under a master key from
``FASTMANGO_MASTER_KEY`` — 32 random bytes in URL-safe base64 (``fastmango secrets keygen``
makes one), or any other text, which is stretched with scrypt and a per-vault salt — or,
where the ``keyring`` package and an OS keyring are present, from that keyring. Each value
is bound to its environment and name (GCM associated data), so a ciphertext moved to
another name fails to open. The vault file is ``<state_dir>/secrets.json`` (mode 0600).

Values are never printed or logged: listings show names and a fingerprint (an HMAC of
the value under the key: equal values match, nothing about a value leaks without the
key). Deploys push the resolved values (environment-specific over ``*`` = every
environment) to the platform's secret or environment API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmango.errors import FastmangoError

ALL = "*"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEYRING_SERVICE = "fastmango"
_CHECK = b"fastmango-vault-check"


class SecretsError(FastmangoError):
    """The vault cannot be opened or changed (no key, wrong key, bad name)."""


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def derive_key(material: str, salt: bytes) -> bytes:
    """32 key bytes from the master key text: base64 of 32 bytes as is, else scrypt."""
    try:
        raw = base64.urlsafe_b64decode(material.encode())
        if len(raw) == 32 and len(material.strip()) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    return hashlib.scrypt(material.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def master_key_text(environ: Mapping[str, str], vault_path: Path) -> str:
    """The master key text from the environment, else the OS keyring; a clear error else."""
    text = environ.get("FASTMANGO_MASTER_KEY", "")
    if text:
        return text
    try:
        import keyring  # type: ignore[import-not-found]  # optional
    except ImportError:
        keyring = None
    if keyring is not None:
        try:
            found = keyring.get_password(KEYRING_SERVICE, str(vault_path.resolve()))
        except Exception:  # no usable keyring backend on this machine
            found = None
        if found:
            return str(found)
    raise SecretsError(
        "no master key: set FASTMANGO_MASTER_KEY (make one with `fastmango secrets keygen`)"
        + ("" if keyring is None else " or store it in the OS keyring")
    )


@dataclass(frozen=True)
class Entry:
    env: str
    name: str
    fingerprint: str
    updated_at: float
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "name": self.name, "fingerprint": self.fingerprint,
                "updated_at": self.updated_at, "updated_by": self.updated_by}  # fmt: skip


class Vault:
    """The sealed secrets in one file. Every change is written atomically."""

    def __init__(self, path: Path, key_text: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.path = path
        self._doc = self._read()
        salt = _unb64(self._doc["salt"])
        self._key = derive_key(key_text, salt)
        self._aead = AESGCM(self._key)
        check = self._doc.get("check")
        if check is None:
            self._doc["check"] = self._seal(_CHECK, "vault", "check")
        else:
            try:
                self._open(check, "vault", "check")
            except SecretsError:
                raise SecretsError(
                    f"the master key does not open {path} (another key was used to make it)"
                ) from None

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, {len(self.entries())} secrets)"

    # -- file ---------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "salt": _b64(os.urandom(16)), "secrets": {}}
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise SecretsError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise SecretsError(f"{self.path} is not a fastmango vault (version 1)")
        return doc

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- sealing ------------------------------------------------------------------
    def _seal(self, value: bytes, env: str, name: str) -> dict[str, str]:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, value, f"{env}\0{name}".encode())
        return {"nonce": _b64(nonce), "ct": _b64(ct)}

    def _open(self, sealed: Mapping[str, str], env: str, name: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(
                _unb64(sealed["nonce"]), _unb64(sealed["ct"]), f"{env}\0{name}".encode()
            )
        except (InvalidTag, KeyError, binascii.Error, ValueError):
            raise SecretsError(f"{env}/{name} cannot be opened (wrong key or edited)") from None

    def fingerprint(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:16]

    # -- operations ---------------------------------------------------------------
    def set(self, env: str, name: str, value: str, who: str, now: float) -> Entry:
        if not NAME.match(name):
            raise SecretsError(f"{name!r} is not a valid variable name (letters, digits, _)")
        if env != ALL and not NAME.match(env.replace("-", "_")):
            raise SecretsError(f"{env!r} is not a valid environment name")
        sealed = self._seal(value.encode(), env, name)
        fp = self.fingerprint(value)
        self._doc["secrets"].setdefault(env, {})[name] = {
            **sealed, "fingerprint": fp, "updated_at": now, "updated_by": who,
        }  # fmt: skip
        self._write()
        return Entry(env, name, fp, now, who)

    def unset(self, env: str, name: str) -> bool:
        scope = self._doc["secrets"].get(env, {})
        if name not in scope:
            return False
        del scope[name]
        if not scope:
            del self._doc["secrets"][env]
        self._write()
        return True

    def entries(self, env: str | None = None) -> list[Entry]:
        out = []
        for e, scope in sorted(self._doc["secrets"].items()):
            if env is not None and e not in (env, ALL):
                continue
            for name, item in sorted(scope.items()):
                out.append(Entry(e, name, item["fingerprint"], item["updated_at"],
                                 item["updated_by"]))  # fmt: skip
        return out

    def resolved(self, env: str) -> dict[str, str]:
        """Every value an environment gets: its own over the ones for every environment."""
        out: dict[str, str] = {}
        for scope in (ALL, env):
            for name, item in self._doc["secrets"].get(scope, {}).items():
                out[name] = self._open(item, scope, name).decode()
        return out
