"""One error hierarchy for everything Lossguard refuses on purpose.

Library code (features, training, serving) raises a `LossguardError` subclass that says what kind of problem it
is; each edge maps the kind once: the CLI to an exit code and one line naming the field or row (cli/errors.py),
the service to an HTTP status and the one error shape `{error, detail: [{field, message}]}` (serving). So a bad
file gets the same clear message from `lossguard predict` as from the API, and no edge needs to know which
module raised it.

The kinds follow what a caller can do about them: fix the input, name something that exists, retry after the
conflicting state changes, or wait until the missing piece (a trained model, a database) is there.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# "reposts[0].timestamp: 转发时间…" -> field "reposts[0].timestamp": most messages already start with the field
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


class LossguardError(Exception):
    """Base class. `field` names the offending input (a column, a dotted API path, a file) when there is one;
    `details` lists every problem found as {field, message[, row]} (a file can have many bad rows)."""

    def __init__(self, message: str, field: str | None = None, details: Iterable[dict[str, Any]] = ()):
        super().__init__(message)
        self.message = message
        if field is None and (prefix := _FIELD_PREFIX.match(message)):
            field = prefix.group(1)
        self.field = field
        self.details = list(details) or ([{"field": field, "message": message}] if field else [])

    def __str__(self) -> str:
        return self.message


class InputError(LossguardError, ValueError):
    """The input is wrong (a bad row, field, file, option or config): fixing the input fixes it."""


class NotFound(LossguardError, LookupError):
    """What the caller named does not exist, or lies outside what the caller may see."""


class Conflict(LossguardError):
    """The request is valid but the current state forbids it (e.g. resolving a warning twice)."""


class Unavailable(LossguardError, RuntimeError):
    """A piece the request needs is not there yet (no trained model, no generated data, a store that is down)."""


def field_error(field: str, message: str, kind: type[LossguardError] = InputError) -> LossguardError:
    """`kind` with the conventional "field: message" text, naming the field for both edges."""
    return kind(f"{field}: {message}", field=field)
