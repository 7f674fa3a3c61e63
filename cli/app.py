"""`lossguard`: the app shell. Each area's commands live in their own module; this one only composes them.

Commands import their library code lazily so that `lossguard --help` stays fast and one broken model does not
take the whole CLI down. Errors are mapped once, at the root (cli/errors.py).
"""
from __future__ import annotations

import typer

from cli import audit, data, feedback, keys, models, monitor, policy, predict, store
from cli.errors import LossguardGroup

app = typer.Typer(help="Lossguard: 声誉/文化/潜在利益 隐性损失预警", no_args_is_help=True, add_completion=False,
                  cls=LossguardGroup)
app.add_typer(data.app, name="data")
for command in (models.train, models.evaluate, models.promote):
    app.command()(command)
app.add_typer(predict.app, name="predict")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(feedback.app, name="feedback")
app.add_typer(policy.app, name="policy")
app.add_typer(store.app, name="store")
app.add_typer(monitor.app, name="monitor")


def main() -> None:  # pragma: no cover - console entry
    app()
