"""Outgoing webhooks to the systems that act on a warning (CRM, project management, LMS).

Deliveries run on a background thread so a slow or dead CRM never delays the API call that changed the warning;
each body is HMAC-SHA256 signed over "timestamp.body" (receivers check origin and reject replays) and retried
with exponential backoff on network errors, 5xx, 408 and 429. Other 4xx are the receiver refusing: not retried.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from features.settings import settings

if TYPE_CHECKING:
    from serving.policy import Policy

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lossguard-Signature"
TIMESTAMP_HEADER = "X-Lossguard-Timestamp"
EVENT_HEADER = "X-Lossguard-Event"
DELIVERY_HEADER = "X-Lossguard-Delivery"
_RETRYABLE_STATUS = {408, 429}


def sign(body: bytes, timestamp: str, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, timestamp: str, signature: str, secret: str, *,
                     max_age_s: float | None = 300, now: float | None = None) -> bool:
    """What a receiver runs: the signature matches and (unless max_age_s is None) the timestamp is recent."""
    if max_age_s is not None:
        try:
            age = (time.time() if now is None else now) - float(timestamp)
        except ValueError:
            return False
        if abs(age) > max_age_s:
            return False
    return hmac.compare_digest(sign(body, timestamp, secret), signature)


@dataclass(frozen=True)
class Delivery:
    id: str
    target: str
    event: str
    status: str  # queued | delivered | failed | dropped
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None


class WebhookDispatcher:
    def __init__(self, targets: Mapping[str, str], secret: str | None = None, *, retries: int = 3,
                 backoff_s: float = 0.5, timeout_s: float = 5.0, max_queue: int = 1000, history: int = 1000):
        self.targets = {name: url for name, url in targets.items() if url}
        self.secret = settings.webhook_secret if secret is None else secret
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self._queue: queue.Queue[tuple[Delivery, bytes]] = queue.Queue(maxsize=max_queue)
        self._history: deque[Delivery] = deque(maxlen=history)
        self._lock = threading.Condition()
        self._unfinished = 0
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    @classmethod
    def from_policy(cls, policy: Policy, secret: str | None = None, **options: Any) -> WebhookDispatcher:
        return cls(policy.webhooks, secret, **options)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._history)

    def send(self, target: str, event: str, payload: Mapping[str, Any]) -> Delivery | None:
        """Queue one delivery and return at once; None when the target has no URL configured."""
        if target not in self.targets:
            log.debug("webhook %s has no url configured; %s not sent", target, event)
            return None
        delivery = Delivery(uuid.uuid4().hex, target, event, "queued")
        body = json.dumps({"id": delivery.id, "event": event, "target": target,
                           "sent_at": datetime.now(UTC).isoformat(), "data": payload},
                          ensure_ascii=False, default=str).encode("utf-8")
        with self._lock:
            if self._stop.is_set():
                return self._record(replace(delivery, status="dropped", error="分发器已关闭"))
            self._start_worker()
            try:
                self._queue.put_nowait((delivery, body))
            except queue.Full:
                log.warning("webhook queue full: %s %s dropped", target, event)
                return self._record(replace(delivery, status="dropped", error="发送队列已满"))
            self._unfinished += 1
        return delivery

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far has been delivered or given up; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def _record(self, delivery: Delivery) -> Delivery:
        self._history.append(delivery)
        return delivery

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="lossguard-webhooks", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    delivery, body = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                outcome = self._deliver(client, delivery, body)
                with self._lock:
                    self._record(outcome)
                    self._unfinished -= 1
                    self._lock.notify_all()

    def _deliver(self, client: httpx.Client, delivery: Delivery, body: bytes) -> Delivery:
        url = self.targets[delivery.target]
        status_code, error = None, None
        for attempt in range(1, self.retries + 2):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json; charset=utf-8", EVENT_HEADER: delivery.event,
                       DELIVERY_HEADER: delivery.id, TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(body, timestamp, self.secret)}
            try:
                response = client.post(url, content=body, headers=headers)
                status_code, error = response.status_code, None
                if response.is_success:
                    return replace(delivery, status="delivered", attempts=attempt, status_code=status_code)
                if status_code < 500 and status_code not in _RETRYABLE_STATUS:
                    error = f"接收方拒绝 (HTTP {status_code})"
                    break
                error = f"HTTP {status_code}"
            except httpx.HTTPError as problem:
                status_code, error = None, f"{type(problem).__name__}: {problem}"
            if attempt <= self.retries and self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
        log.warning("webhook %s %s to %s failed after %d attempts: %s", delivery.target, delivery.event, url,
                    attempt, error)
        return replace(delivery, status="failed", attempts=attempt, status_code=status_code, error=error)
