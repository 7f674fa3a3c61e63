"""Prometheus labels that stay bounded: a request is counted under its route template, never its raw path.

BentoML's traffic middleware labels every request with `scope["path"]` as sent, so each distinct unknown path
(a scanner, a typo) added series to /metrics for good (200 random paths took the exposition from 138 KB to
997 KB) and `GET /info%00` wrote a raw NUL into it. It runs outside every middleware a service may add, so the
label is fixed where it is read: `install` wraps that middleware's __call__ once, at import of the service, to
hand it the route template (`/warnings/{warning_id}`), or `UNMATCHED` for any path no route serves. The real
path is restored before the request goes on, so routing never sees the label.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

UNMATCHED = "unmatched"
_state: dict = {"exact": (), "templates": (), "apps": (), "seen": None, "patterns": [], "installed": False}


def set_routes(exact: Iterable[str], templates: Iterable[tuple[str, str]] = (), apps: Iterable = ()) -> None:
    """Known routes: exact paths, (template, regex) pairs, and apps whose routes are read when labels are needed
    (BentoML adds a class's FastAPI routes when the service instance starts, after this module is imported)."""
    _state.update(exact=tuple(exact), templates=tuple(templates), apps=tuple(apps), seen=None)


def _patterns() -> list:
    seen = tuple(len(app.routes) for app in _state["apps"])
    if seen != _state["seen"]:
        patterns = [(path, re.compile(re.escape(path) + r"\Z")) for path in _state["exact"]]
        patterns += [(template, re.compile(regex)) for template, regex in _state["templates"]]
        patterns += [(template, re.compile(regex)) for app in _state["apps"] for template, regex in fastapi_routes(app)]
        _state["patterns"], _state["seen"] = patterns, seen
    return _state["patterns"]


def route_label(path: str) -> str:
    """The template of the route serving `path`, or UNMATCHED."""
    for template, pattern in _patterns():
        if pattern.match(path):
            return template
    return UNMATCHED


def fastapi_routes(app, prefix: str = "") -> list[tuple[str, str]]:
    """(template, regex) for every route and mount of a FastAPI/Starlette app or router, included routers too
    (FastAPI keeps them behind a wrapper that holds the original router and the prefix)."""
    from starlette.routing import Mount, compile_path

    out = []
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            out += fastapi_routes(inner, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, Mount):
            out.append((prefix + route.path, compile_path(prefix + route.path + "/{path:path}")[0].pattern))
        elif getattr(route, "path", None) is not None:
            out.append((prefix + route.path, compile_path(prefix + route.path)[0].pattern))
    return out


def install() -> None:
    """Wrap BentoML's traffic-metrics middleware so it labels with route templates (once per process)."""
    if _state["installed"]:
        return
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    original = RunnerTrafficMetricsMiddleware.__call__

    async def labelled(self, scope, receive, send):
        if not scope["type"].startswith("http") or scope.get("path") == "/metrics":
            return await original(self, scope, receive, send)
        if not getattr(self, "_lossguard_restores", False):
            inner = self.app

            async def restore(scope, receive, send):
                real = scope.get("lossguard.path")
                return await inner({**scope, "path": real} if real is not None else scope, receive, send)

            self.app, self._lossguard_restores = restore, True
        label = route_label(scope["path"])
        return await original(self, {**scope, "path": label, "lossguard.path": scope["path"]}, receive, send)

    RunnerTrafficMetricsMiddleware.__call__ = labelled
    _state["installed"] = True
