"""The CLI's one error mapping: a LossguardError anywhere below a command becomes one red line naming the field or
row, with the exit code of its kind (input 2, not found 3, conflict 4, unavailable 5); never a traceback."""
from __future__ import annotations

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cli import app
from cli.errors import LossguardGroup
from features.errors import Conflict, InputError, NotFound, Unavailable


def test_bad_files_for_predict_spread_get_one_line_naming_the_problem(tmp_path):
    posts, reposts, out = tmp_path / "posts.csv", tmp_path / "reposts.csv", tmp_path / "out.csv"
    pd.DataFrame({"post_id": ["p1"], "text": ["新品发布"], "channel": ["weibo"], "created_at": ["not a time"],
                  "author_followers": [10], "internal": [False]}).to_csv(posts, index=False)
    pd.DataFrame({"post_id": ["p1"], "timestamp": ["2026-01-01T00:00:00"], "user_followers": [3]}).to_csv(
        reposts, index=False)
    cases = {
        "bad time": (posts, "created_at"),
        "not a CSV": (tmp_path / "binary.csv", "binary.csv"),
        "empty": (tmp_path / "empty.csv", "empty.csv"),
    }
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x00\x00")
    (tmp_path / "empty.csv").write_text("")
    for name, (source, named) in cases.items():
        result = CliRunner().invoke(app, ["predict", "spread", "--posts", str(source), "--reposts", str(reposts),
                                          "--output", str(out)])
        assert result.exit_code == 2, (name, result.output)
        assert named in result.output and "Traceback" not in result.output, (name, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), name
    assert not out.exists()


@pytest.mark.parametrize("error, code", [(InputError("x: bad"), 2), (NotFound("nothing"), 3),
                                         (Conflict("not now"), 4), (Unavailable("train first"), 5)])
def test_each_kind_has_its_exit_code(error, code):
    probe = typer.Typer(cls=LossguardGroup)

    @probe.command()
    def fail() -> None:
        raise error

    @probe.command()
    def other() -> None:  # two commands: typer would otherwise run the only one without a name
        pass

    result = CliRunner().invoke(probe, ["fail"])
    assert result.exit_code == code and f"错误: {error}" in result.output
