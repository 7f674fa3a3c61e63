"""What makes the audit chain more than a checksum: keys the database does not hold, and anchors outside it.

A SHA-256 chain only shows accidents: anyone who can write the database can edit a row, recompute every hash after
it with the project's own function and move the head, and verify says intact. So:

- **Keys.** Entries are HMAC-SHA256 signed with a key kept outside the database: LOSSGUARD_AUDIT_KEYS (hex keys,
  oldest first, comma-separated: what replicas should share, from a secret store) or else the key file
  (settings.audit_key_file, mode 0600, created on first start like api_keys.txt). Each entry names its key id, so
  keys can be rotated: add a key to the end of the ring (`lossguard audit rotate-key`), keep the old ones for
  verifying; the first write under the new key appends a `rekey` entry signed with it, and entries under an older
  key may not follow it. Entries written before any key (stores from before this change) stay SHA-256; the
  `rekey` entry that starts the keyed chain covers their last hash, so they can no longer be rewritten either.
- **Anchors.** HMAC alone cannot show a tail that was cut off together with the head row, or a whole database
  swapped for an older copy. Checkpoints of the head (seq, hash, time, key id, HMAC) are appended to a file per
  store in settings.audit_anchor_dir (the service writes one a minute when the chain moved; `lossguard audit
  checkpoint` from cron does the same) and, when LOSSGUARD_AUDIT_ANCHOR_URL is set, sent off the host. Verify
  checks the chain against every anchor: an anchored entry must still be there, unchanged.

What it does not stop: someone holding the key (the service host) can rewrite entries since the last anchor that
left the host. See README, "Security".
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from features.errors import InputError, Unavailable


def key_id(key: bytes) -> str:
    """A short public name for a key (not the key: 48 bits of a hash of it)."""
    return hashlib.sha256(b"lossguard-audit-key-id:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class AuditKeys:
    """The key ring, oldest first; the last key signs new entries."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def active(self) -> tuple[str, bytes]:
        return self.keys[-1]

    def get(self, kid: str) -> bytes | None:
        return next((key for name, key in self.keys if name == kid), None)

    def rank(self, kid: str) -> int:
        """Position in the ring (-1: unknown)."""
        return next((i for i, (name, _) in enumerate(self.keys) if name == kid), -1)

    def sign(self, payload: bytes, kid: str | None = None) -> str:
        kid = kid or self.active[0]
        key = self.get(kid)
        if key is None:
            raise Unavailable(f"缺少审计密钥 {kid}")
        return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _parse(text: str, where: str) -> list[bytes]:
    keys = []
    for number, line in enumerate(text.replace(",", "\n").splitlines(), 1):
        value = line.split()[-1] if line.split() else ""
        if not value or value.startswith("#"):
            continue
        try:
            key = bytes.fromhex(value)
        except ValueError:
            raise InputError(f"{where} 第 {number} 项不是十六进制的密钥") from None
        if len(key) < 16:
            raise InputError(f"{where} 第 {number} 项太短：审计密钥至少 16 字节（32 个十六进制字符）")
        keys.append(key)
    return keys


def load_keys(env_keys: str, key_file: str | Path, *, create: bool) -> AuditKeys | None:
    """The ring from LOSSGUARD_AUDIT_KEYS, else from the key file; the file is created (0600, one fresh key) when
    `create` and it does not exist. None when there is no key and none may be created (a read-only check)."""
    if env_keys.strip():
        keys = _parse(env_keys, "LOSSGUARD_AUDIT_KEYS")
    else:
        path = Path(key_file)
        if not path.exists():
            if not create:
                return None
            _create_key_file(path)
        keys = _parse(path.read_text(encoding="utf-8"), str(path))
    if not keys:
        raise InputError("审计密钥为空（LOSSGUARD_AUDIT_KEYS 或密钥文件）")
    return AuditKeys(tuple((key_id(key), key) for key in keys))


def _create_key_file(path: Path) -> None:
    """Write a fresh key where nobody else can read it; processes starting together agree on one file (the
    complete file appears at once, via link; a process that loses the race reads the winner's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit_keys.")
    try:
        os.fchmod(fd, 0o600)
        key = secrets.token_bytes(32)
        os.write(fd, f"{key_id(key)} {key.hex()}\n".encode())
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def rotate_key(key_file: str | Path) -> str:
    """Append a fresh key to the key file; it signs from the next write on. Returns its id."""
    path = Path(key_file)
    if not path.exists():
        _create_key_file(path)
        return load_keys("", path, create=False).active[0]
    key = secrets.token_bytes(32)
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{key_id(key)} {key.hex()}\n")
    return key_id(key)


def store_name(url: str) -> str:
    """Which store an anchor belongs to: the database's location without credentials (a moved or restored copy is
    another store, with its own anchors)."""
    parsed = sa.make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return f"sqlite:{Path(parsed.database or ':memory:').resolve()}"
    return f"{parsed.get_backend_name()}://{parsed.host or ''}:{parsed.port or ''}/{parsed.database or ''}"


def anchor_path(url: str, anchor_dir: str | Path) -> Path:
    name = store_name(url)
    stem = Path(sa.make_url(url).database or "store").stem or "store"
    return Path(anchor_dir) / f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.jsonl"


class AnchorLog:
    """Signed checkpoints of one store's chain head, one JSON line each, appended and never rewritten."""

    def __init__(self, path: str | Path, store: str):
        self.path, self.store = Path(path), store

    @staticmethod
    def _payload(store: str, seq: int, digest: str, at: str, kid: str) -> bytes:
        return json.dumps([store, seq, digest, at, kid], separators=(",", ":")).encode()

    def last(self) -> dict | None:
        entries = self.read()
        return entries[-1] if entries else None

    def append(self, seq: int, digest: str, keys: AuditKeys, at: datetime) -> dict:
        kid = keys.active[0]
        when = at.isoformat()
        anchor = {"store": self.store, "seq": seq, "hash": digest, "at": when, "kid": kid,
                  "mac": keys.sign(self._payload(self.store, seq, digest, when, kid), kid)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (json.dumps(anchor, ensure_ascii=False) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return anchor

    def read(self) -> list[dict]:
        """Every anchor line (as written; a line that is not JSON comes back as {"line": n, "bad": text})."""
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"bad": line[:80]}
            out.append({**entry, "line": number} if isinstance(entry, dict) else {"bad": line[:80], "line": number})
        return out

    def problem(self, anchor: dict, keys: AuditKeys | None) -> str | None:
        """Why an anchor cannot be trusted (its line is named), or None."""
        where = f"锚点文件 {self.path} 第 {anchor.get('line')} 行"
        try:
            store, seq, digest, at, kid = (anchor[k] for k in ("store", "seq", "hash", "at", "kid"))
        except KeyError:
            return f"{where} 不完整（锚点文件被改动）"
        if store != self.store:
            return f"{where} 属于另一个库 {store}（锚点文件放错或被替换）"
        key = keys.get(kid) if keys is not None else None
        if key is None:
            return f"{where} 由未知密钥 {kid} 签名（缺少该密钥，或锚点被伪造）"
        expected = hmac.new(key, self._payload(store, seq, digest, at, kid), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(anchor.get("mac", ""))):
            return f"{where} 签名无效（锚点被改动或伪造）"
        return None
