"""The request guard in front of every route, on a stand-in app (no models, no server): a body streamed past the
cap is cut off as it arrives, key guessing is slowed down per client, route labels for /metrics stay bounded."""
from __future__ import annotations

import asyncio
import json

import pytest

from serving.auth import AuthError, Principal
from serving.middleware import MAX_BODY_BYTES, AuthMiddleware

MiB = 1024 * 1024


class Echo:
    """An app that reads the whole body, as a handler parsing JSON does, and counts what it read."""

    def __init__(self):
        self.read = 0

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def call(app, path: str, chunks: int, headers: list[tuple[bytes, bytes]] = (), client: str = "10.0.0.1"):
    """Send a POST whose body arrives in `chunks` pieces of 1 MiB (no Content-Length); returns (status, headers,
    body, how many pieces the server pulled)."""
    pulled, sent = [0], []

    async def receive():
        pulled[0] += 1
        return {"type": "http.request", "body": b"a" * MiB, "more_body": pulled[0] < chunks}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-type", b"application/json"),
                                                                      *headers],
             "client": (client, 1234)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled[0]


def test_a_streamed_body_is_cut_off_once_it_passes_the_cap():
    app = Echo()
    status, _, body, pulled = call(AuthMiddleware(app), "/review/", 64)
    assert status == 413 and json.loads(body)["detail"][0]["field"] == "body"
    assert pulled <= MAX_BODY_BYTES // MiB + 1  # stopped reading at the cap, not after 64 MiB
    assert app.read <= MAX_BODY_BYTES


def test_a_body_under_the_cap_passes_whole():
    app = Echo()
    status, _, _, pulled = call(AuthMiddleware(app), "/review/", 3)
    assert status == 200 and pulled == 3 and app.read == 3 * MiB


class Keys:
    """A key store that knows one key."""

    def principal(self, key):
        if key == "good":
            return Principal("hr", "hr_system")
        raise AuthError(401, "API key 无效")


def test_repeated_unknown_keys_are_answered_429_with_retry_after_even_for_a_good_key():
    from serving.auth import FailedKeys

    guard = AuthMiddleware(Echo())
    guard._keys = Keys()
    guard.failed = FailedKeys(limit=5, window_s=60)
    statuses = [call(guard, "/warnings", 0, [(b"x-api-key", f"guess-{i}".encode())])[0] for i in range(5)]
    assert statuses == [401] * 5
    status, headers, _, _ = call(guard, "/warnings", 0, [(b"x-api-key", b"good")])
    assert status == 429 and 1 <= int(headers[b"retry-after"]) <= 60
    other, _, _, _ = call(guard, "/warnings", 0, [(b"x-api-key", b"good")], client="10.0.0.2")
    assert other == 200  # another client is not affected


def test_failed_keys_forget_after_the_window_and_stay_bounded():
    from serving.auth import FailedKeys

    failed = FailedKeys(limit=3, window_s=10, max_clients=100)
    for t in range(3):
        failed.record("a", now=float(t))
    assert failed.blocked_for("a", now=3.0) == 7
    assert failed.blocked_for("a", now=10.5) == 0  # the oldest failure left the window
    for n in range(1000):
        failed.record(f"c{n}", now=0.0)
    assert len(failed._failures) == 100


def test_two_api_key_headers_are_refused():
    guard = AuthMiddleware(Echo())
    guard._keys = Keys()
    status, _, body, _ = call(guard, "/warnings", 0, [(b"x-api-key", b"good"), (b"x-api-key", b"other")])
    assert status == 400 and json.loads(body)["detail"][0]["field"] == "X-API-Key"


@pytest.mark.parametrize("path, label", [
    ("/warnings/17", "/warnings/{warning_id}"), ("/warnings/17/ack", "/warnings/{warning_id}/ack"),
    ("/assess", "/assess"), ("/info\x00", "unmatched"), ("/probe-1234", "unmatched"),
    ("/review/static/review.js", "/review/static"), ("/teams/U1/risk", "/teams/{unit_id}/risk"),
])
def test_route_labels_are_templates_or_unmatched(path, label):
    from fastapi import APIRouter, FastAPI
    from fastapi.staticfiles import StaticFiles

    from serving import metrics

    web, router = FastAPI(), APIRouter()
    for route in ("/warnings/{warning_id}", "/warnings/{warning_id}/ack"):
        web.get(route)(lambda: None)
    router.get("/{unit_id}/risk")(lambda: None)
    web.include_router(router, prefix="/teams")  # as BentoML re-includes a service class's routes
    web.mount("/review/static", StaticFiles(directory="."), name="static")
    metrics.set_routes(("/assess", "/metrics"), apps=[web])
    assert metrics.route_label(path) == label


def test_load_shedding_answers_in_the_one_shape():
    """BentoML's 429 past max_concurrency comes from a middleware outside ours: it too speaks our shape."""
    from bentoml._internal.server.http.traffic import MaxConcurrencyMiddleware

    from serving.http_errors import shape_overload_replies

    shape_overload_replies()
    shedding = MaxConcurrencyMiddleware(Echo(), max_concurrency=1)
    shedding._semaphore = asyncio.Semaphore(0)  # already full
    status, _, body, _ = call(shedding, "/assess", 0)
    reply = json.loads(body)
    assert status == 429 and reply["detail"][0]["field"] == "body" and "请求过多" in reply["error"]
