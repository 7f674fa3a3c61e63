"""How the CLI answers a LossguardError: one red line naming the field or row, and an exit code per kind.

The codes let a data pipeline tell "fix your file" (2) from "nothing by that name" (3), "not now" (4) and "train
or generate first" (5); an unexpected exception still shows its traceback, because that is a bug.
"""
from __future__ import annotations

import typer
from typer.core import TyperGroup

from features.errors import Conflict, InputError, LossguardError, NotFound, Unavailable

EXIT_CODES: tuple[tuple[type[LossguardError], int], ...] = (
    (InputError, 2), (NotFound, 3), (Conflict, 4), (Unavailable, 5), (LossguardError, 1),
)


def exit_code(error: LossguardError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def fail(message: str, code: int = 2) -> None:
    """Stop with one red line on stderr (for problems only the CLI itself can see, e.g. a bad option)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


class LossguardGroup(TyperGroup):
    """Root command group: any LossguardError raised below becomes `错误: <message>` and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LossguardError as error:
            fail(f"错误: {error}", exit_code(error))
