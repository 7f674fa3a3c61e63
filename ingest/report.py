"""What an import or check found: rows kept and dropped per entity, and every problem with file, row, field and
reason, as a short Chinese summary on screen and one CSV a data steward can filter in Excel.

A row counts once as dropped however many of its fields are wrong (each wrong field is its own line in the CSV).
File-level problems (unreadable file, no entity, a mapping that does not fit the file) have an empty row.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPORT_COLUMNS = ("entity", "file", "row", "field", "value", "reason")
MAX_VALUE_CHARS = 80
EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class Problem:
    entity: str
    file: str
    row: int | None  # 0-based data row in `file` (CSV/Excel line = row + 2); None for the whole file
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}" + ("" if self.row is None else f" 第 {self.row} 行")
        return f"{where} 字段 {self.field}: {self.reason}"


def shown_value(value) -> str:
    """The offending cell as text, cut short (a 5,000-character post would drown the report)."""
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


@dataclass
class EntityResult:
    """One entity's outcome. `read` counts data rows found in its files, `kept` those that passed."""

    entity: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    kept: int = 0
    output: str = ""

    @property
    def dropped(self) -> int:
        return self.read - self.kept


@dataclass
class Report:
    entities: dict[str, EntityResult] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Clean: nothing dropped and no file-level problem (what `lossguard data check` gates on)."""
        return not self.problems

    def entity(self, name: str) -> EntityResult:
        return self.entities.setdefault(name, EntityResult(name))

    def summary(self, report_path: Path | None = None) -> str:
        """The on-screen summary: per entity files/read/kept/dropped, the fields that failed most, a few examples."""
        lines = []
        for result in self.entities.values():
            lines.append(f"[{result.entity}] {len(result.files)} 个文件, 读入 {result.read} 行, 保留 {result.kept} 行, "
                         f"丢弃 {result.dropped} 行" + (f" -> {result.output}" if result.output else ""))
            mine = [p for p in self.problems if p.entity == result.entity]
            for (name, count) in Counter(p.field for p in mine).most_common(5):
                lines.append(f"    字段 {name}: {count} 处问题")
            for problem in mine[:EXAMPLES_SHOWN]:
                lines.append(f"    {problem}")
            if len(mine) > EXAMPLES_SHOWN:
                lines.append(f"    … 另有 {len(mine) - EXAMPLES_SHOWN} 处")
        loose = [p for p in self.problems if p.entity not in self.entities]
        for problem in loose:
            lines.append(f"[未导入] {problem}")
        verdict = "全部通过" if self.ok else f"共 {len(self.problems)} 处问题"
        lines.append(f"校验结果: {verdict}" + (f"; 明细见 {report_path}" if report_path and self.problems else ""))
        return "\n".join(lines)

    def write_csv(self, path: Path) -> Path:
        """Every problem, one line each (UTF-8 with BOM so that Excel on Chinese Windows opens it right)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
            writer.writeheader()
            for problem in self.problems:
                row = asdict(problem)
                row["row"] = "" if problem.row is None else problem.row
                writer.writerow(row)
        return path
