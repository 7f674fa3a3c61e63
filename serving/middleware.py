"""The ASGI middlewares in front of every route: the request guard, and one shape (and headers) for every reply.

`AuthMiddleware` runs before any handler, so no handler can forget it. In order it refuses: a request carrying
two X-API-Key headers (400: which one would count?), a declared body over LOSSGUARD_MAX_BODY_BYTES (413 before
anything is read), a client that sent too many unknown keys lately (429 with Retry-After, see auth.FailedKeys),
a missing or unknown key or a role the route does not allow (401/403), a body that is not UTF-8 JSON (415). It
then counts the body's bytes as they arrive, so a body streamed without Content-Length (chunked) is cut off with
413 as soon as it passes the cap, on every route, instead of being read whole into memory.

`ErrorShapeMiddleware` gives every error reply, whoever made it (our handlers, FastAPI, Starlette, BentoML), the
one shape {error, detail: [{field, message}]} in Chinese (serving.http_errors), adds the model versions to
successful API replies, and the security headers to every reply (CSP on the review page).
"""
import json
import os
from typing import Optional

from features.settings import settings
from serving.auth import AuthError, FailedKeys, KeyStore
from serving.http_errors import _reshape, plain_body

MAX_BODY_BYTES = int(os.environ.get("LOSSGUARD_MAX_BODY_BYTES", str(8 * 1024 * 1024)))
READERS = ("hr_system", "manager", "admin")  # every role but monitor

# Which roles may call which path prefixes; anything not listed is public (health, the page shell, and the docs
# and metrics when settings say so). /metrics counts requests per route and warnings per grade: a monitor key
# (Prometheus) or an admin unless LOSSGUARD_PUBLIC_METRICS=1. The OpenAPI document is the integration contract and
# says nothing the README does not: public unless LOSSGUARD_PUBLIC_DOCS=0.
ROUTE_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/sentiment", ("hr_system", "admin")),
    ("/attrition", ("hr_system", "admin")),
    ("/spread", ("hr_system", "admin")),
    ("/assess", ("hr_system", "admin")),
    ("/warnings", ("hr_system", "manager", "admin")),
    ("/teams", ("hr_system", "manager", "admin")),
    ("/me", READERS),
    ("/info", READERS),
    *(() if settings.public_metrics else (("/metrics", ("monitor", "admin")),)),
    *(() if settings.public_docs else (("/docs.json", READERS), ("/schema.json", READERS))),
    ("/monitoring/scan", ("admin",)),
    ("/monitoring", READERS),
    ("/effects/report", ("manager", "admin")),  # a department's quarter is for the people who answer for it
    ("/effects", READERS),
)
BENTO_APIS = ("/sentiment", "/attrition", "/spread", "/assess")
BODY_METHODS = (b"POST", b"PUT", b"PATCH")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]
# The review page loads its script and style from /review/static only; the API it calls is same-origin.
REVIEW_CSP = (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                          b"connect-src 'self'; form-action 'self'; base-uri 'none'; "
                                          b"frame-ancestors 'none'")
_model_header: list[tuple[bytes, bytes]] = []  # set once the models are loaded: every API reply names them


async def _reply(send, status: int, message: str, field: str = "body",
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    payload = json.dumps(plain_body(message, field), ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def set_model_versions(versions: str) -> None:
    """Called once the models are loaded: from then on every successful API reply names them."""
    _model_header[:] = [(b"x-lossguard-models", versions.encode())]


def json_media_problem(content_type: Optional[bytes]) -> Optional[str]:
    """Why a body with this Content-Type is refused (415), or None: JSON in UTF-8 only (RFC 8259 §8.1); a
    missing Content-Type is read as JSON, as BentoML does."""
    if content_type is None:
        return None
    media, *params = content_type.decode("latin-1").split(";")
    if media.strip().lower() != "application/json":
        return f"请求体应为 JSON（Content-Type: application/json），实为 {media.strip()[:60]!r}"
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"请求体应为 UTF-8 编码的 JSON，不支持 charset={value.strip()[:30]}"
    return None


class _BodyTooLarge:
    """`receive` that counts the body's bytes as they arrive; past the cap it answers 413 itself and tells the app
    the client went away (so the app stops reading), and drops whatever the app still tries to send."""

    def __init__(self, receive, send, limit: int):
        self.receive, self.send, self.limit = receive, send, limit
        self.seen, self.cut, self.started = 0, False, False

    async def limited_receive(self):
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.cut = True
                if not self.started:
                    await _reply(self.send, 413, f"请求体过大（上限 {self.limit} 字节）")
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(self, message):
        if self.cut:
            return None
        if message["type"] == "http.response.start":
            self.started = True
        return await self.send(message)


class AuthMiddleware:
    """Refuses ambiguous keys, oversized bodies, key guessing, missing or unknown keys, wrong roles and non-JSON
    bodies before any handler runs, and cuts off bodies that grow past the cap while streaming."""

    def __init__(self, app):
        self.app = app
        self._keys: Optional[KeyStore] = None
        self.failed = FailedKeys(settings.auth_fail_limit, settings.auth_fail_window_s)

    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(settings.warnings_db)
        return self._keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        raw_headers = scope.get("headers") or []
        headers = dict(raw_headers)
        if sum(1 for name, _ in raw_headers if name == b"x-api-key") > 1:
            return await _reply(send, 400, "请求头 X-API-Key 出现多次：每个请求只能携带一个 API key", "X-API-Key")
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await _reply(send, 413, f"请求体过大（上限 {MAX_BODY_BYTES} 字节）")
        roles = next((r for prefix, r in ROUTE_ROLES if path == prefix or path.startswith(prefix + "/")), None)
        if roles is not None:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.failed.blocked_for(client)
            if wait:
                return await _reply(send, 429, f"无效的 API key 尝试过多，请 {wait} 秒后重试", "X-API-Key",
                                    ((b"retry-after", str(wait).encode()),))
            try:
                principal = self.keys().principal(headers.get(b"x-api-key", b"").decode("utf-8", "replace"))
            except AuthError as exc:
                if exc.status == 401 and headers.get(b"x-api-key"):
                    self.failed.record(client)
                return await _reply(send, exc.status, exc.message, "X-API-Key")
            if principal.role not in roles:
                return await _reply(send, 403, f"角色 {principal.role} 无权访问 {path}", "X-API-Key")
            scope.setdefault("state", {})["principal"] = principal
        if scope["method"].encode() in BODY_METHODS:
            problem = json_media_problem(headers.get(b"content-type"))
            if problem is not None:
                return await _reply(send, 415, problem, "Content-Type")
        guard = _BodyTooLarge(receive, send, MAX_BODY_BYTES)
        return await self.app(scope, guard.limited_receive, guard.guarded_send)


class ErrorShapeMiddleware:
    """Every error reply in the one shape (serving.http_errors): BentoML answers bad input on its APIs with 400
    and pydantic's English, FastAPI a body it cannot parse with 400 {"detail": ...} and unknown routes with 404,
    Starlette a wrong method with 405. Only error replies are buffered; successful ones stream through untouched,
    with the model versions added on the APIs. Every reply gets the security headers; the review page its CSP."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        extra = SECURITY_HEADERS + ([REVIEW_CSP] if path == "/review" or path.startswith("/review/") else [])
        api = path in BENTO_APIS
        failed: dict = {}  # the start message of an error reply, held back until its body is complete
        chunks: list[bytes] = []

        async def shaped_send(message):
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    added = extra + (_model_header if api else [])
                    return await send({**message, "headers": list(message.get("headers", [])) + added})
                failed.update(message)
                return None
            if not failed:
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                status, body = _reshape(failed["status"], b"".join(chunks))
                payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
                kept = [(k, v) for k, v in failed.get("headers", []) if k.lower() in (b"retry-after", b"allow")]
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json; charset=utf-8"),
                                        (b"content-length", str(len(payload)).encode()), *kept, *extra]})
                await send({"type": "http.response.body", "body": payload})
            return None

        return await self.app(scope, receive, shaped_send)
