"""API keys with roles and an org scope; the service checks them before any handler runs.

Keys are stored as SHA-256 hashes (never the key itself), in the same database as the warning store, so one
backup covers both. Roles:
- hr_system: machine clients (HR/ERP/CRM): predictions, warnings (read and act on), every field.
- manager:   a person scoped to an org subtree (unit_id): warnings and team risk there; pay and performance
             fields are masked.
- monitor:   /metrics only (a Prometheus scraper's key: it may count requests, never read a warning).
- admin:     everything. Keys themselves are managed with `lossguard keys`.

Guessing keys is slowed down per client (FailedKeys): past LOSSGUARD_AUTH_FAIL_LIMIT unknown keys within
LOSSGUARD_AUTH_FAIL_WINDOW_S seconds, the client gets 429 with Retry-After on every authenticated route, whatever
key it sends, until the window has passed (a valid key must not tell a guesser it hit). Counted per worker
process and per client address (behind a proxy, the address the proxy forwards).
"""
from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, select

from serving.db import create_schema, make_engine, write_connection

ROLES = ("hr_system", "manager", "monitor", "admin")
# Fields only these roles may read; everyone else gets them masked.
SENSITIVE_FIELDS = {"pay_vs_band": ("hr_system", "admin"), "performance_rating": ("hr_system", "admin")}
MASK = "***"

_metadata = MetaData()
api_keys = Table(
    "api_keys",
    _metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("unit_id", String(64), nullable=True),
    Column("created_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    unit_id: str | None = None  # managers see this unit and everything below it

    def may_read(self, field: str) -> bool:
        allowed = SENSITIVE_FIELDS.get(field)
        return allowed is None or self.role in allowed


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    CACHE_TTL_S = 60.0  # a key deleted from the table stops working within a minute, without a restart

    def __init__(self, url: str):
        self.engine = make_engine(url)  # the warning store's setup: replicas starting together do not race
        with write_connection(self.engine) as conn, conn.begin():
            create_schema(conn, _metadata)
        self._cache: dict[str, tuple[Principal, float]] = {}  # known keys only: unknown ones must not grow it

    def create(self, name: str, role: str, unit_id: str | None = None, key: str | None = None) -> str:
        """Create a key and return it once; only its hash is kept."""
        if role not in ROLES:
            raise ValueError(f"role 应为 {ROLES} 之一, 实为 {role!r}")
        if role == "manager" and not unit_id:
            raise ValueError("manager 角色必须指定 unit_id (可见的组织范围)")
        key = key or f"lg_{secrets.token_urlsafe(24)}"
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(api_keys.insert().values(key_hash=hash_key(key), name=name, role=role, unit_id=unit_id,
                                                  created_at=datetime.now(UTC).replace(tzinfo=None)))
        return key

    def principal(self, key: str | None) -> Principal:
        """Who holds this key; AuthError(401) when it is missing or unknown."""
        if not key:
            raise AuthError(401, "缺少 API key (请求头 X-API-Key)")
        digest = hash_key(key)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == digest)).mappings().first()
        if row is None:
            self._cache.pop(digest, None)
            raise AuthError(401, "API key 无效")
        found = Principal(row["name"], row["role"], row["unit_id"])
        self._cache[digest] = (found, time.monotonic() + self.CACHE_TTL_S)
        return found


class FailedKeys:
    """Unknown keys per client in a sliding window; a client past the limit is blocked until its oldest counted
    failure leaves the window. Bounded memory: at most `max_clients` clients are tracked (oldest dropped)."""

    def __init__(self, limit: int, window_s: float, max_clients: int = 10_000):
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.pop(client, None) or deque(maxlen=max(self.limit, 1))
            times.append(now)
            self._failures[client] = times
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def blocked_for(self, client: str, now: float | None = None) -> int:
        """Seconds until `client` may try again (0: not blocked)."""
        if self.limit <= 0:
            return 0
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.get(client)
            if not times:
                return 0
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(self.window_s - (now - times[0])))


def mask_record(record: dict, principal: Principal) -> dict:
    """Field-level permission: replace fields the caller's role may not read."""
    return {k: (MASK if not principal.may_read(k) and v is not None else v) for k, v in record.items()}
