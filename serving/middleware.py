"""The ASGI middlewares in front of every route: authentication and roles, and one shape for error replies.

Authentication runs here rather than in the handlers, so no handler can forget it. LOSSGUARD_MAX_BODY_BYTES caps
request bodies (413 before anything is read).
"""
import json
import os
from typing import Optional

from features.settings import settings
from serving.auth import AuthError, KeyStore
from serving.http_errors import _reshape

MAX_BODY_BYTES = int(os.environ.get("LOSSGUARD_MAX_BODY_BYTES", str(8 * 1024 * 1024)))

# Which roles may call which path prefixes; anything not listed is public (health, metrics, docs, the page shell).
ROUTE_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/sentiment", ("hr_system", "admin")),
    ("/attrition", ("hr_system", "admin")),
    ("/spread", ("hr_system", "admin")),
    ("/assess", ("hr_system", "admin")),
    ("/warnings", ("hr_system", "manager", "admin")),
    ("/teams", ("hr_system", "manager", "admin")),
    ("/me", ("hr_system", "manager", "admin")),
    ("/info", ("hr_system", "manager", "admin")),
)
BENTO_APIS = ("/sentiment", "/attrition", "/spread", "/assess")
_model_header: list[tuple[bytes, bytes]] = []  # set once the models are loaded: every API reply names them


async def _reply(send, status: int, body: dict) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def set_model_versions(versions: str) -> None:
    """Called once the models are loaded: from then on every successful API reply names them."""
    _model_header[:] = [(b"x-lossguard-models", versions.encode())]


class AuthMiddleware:
    """Rejects oversized bodies, missing or unknown keys and wrong roles before any handler runs."""

    def __init__(self, app):
        self.app = app
        self._keys: Optional[KeyStore] = None

    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(settings.warnings_db)
        return self._keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await _reply(send, 413, {"error": f"请求体过大（上限 {MAX_BODY_BYTES} 字节）"})
        roles = next((r for prefix, r in ROUTE_ROLES if path == prefix or path.startswith(prefix + "/")), None)
        if roles is None:
            return await self.app(scope, receive, send)
        try:
            principal = self.keys().principal(headers.get(b"x-api-key", b"").decode("utf-8", "replace"))
        except AuthError as exc:
            return await _reply(send, exc.status, {"error": exc.message})
        if principal.role not in roles:
            return await _reply(send, 403, {"error": f"角色 {principal.role} 无权访问 {path}"})
        scope.setdefault("state", {})["principal"] = principal
        return await self.app(scope, receive, send)


class ErrorShapeMiddleware:
    """BentoML answers bad input on its APIs with 400 and pydantic's English, raised errors as a list, and a
    malformed multipart body with a 500. The APIs take JSON only (else 415), and error replies are rewritten to
    our shape: 422 (413 for oversized batches), {error, detail:[{field, message}]}. Only error replies are
    buffered; successful ones stream through untouched, with the model versions added."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in BENTO_APIS:
            return await self.app(scope, receive, send)
        media = dict(scope.get("headers") or []).get(b"content-type", b"application/json").split(b";")[0]
        if scope["method"] == "POST" and media.strip().lower() != b"application/json":
            return await _reply(send, 415, {"error": "请求体应为 JSON（Content-Type: application/json）"})
        failed: dict = {}  # the start message of an error reply, held back until its body is complete
        chunks: list[bytes] = []

        async def shaped_send(message):
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    return await send({**message, "headers": list(message.get("headers", [])) + _model_header})
                failed.update(message)
                return None
            if not failed:
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await _reply(send, *_reshape(failed["status"], b"".join(chunks)))
            return None

        return await self.app(scope, receive, shaped_send)
