"""Invisible and control characters in text people will read: what is refused, what is removed, and why.

A bidi override (U+202E) makes the review page show a post reversed; zero-width characters make a text look empty
or split a keyword so the library misses it, and the text models score such strings as if they meant something (a
zero-width-only text came out negative at 0.58). NUL and the other C0 controls have no place in a post, a note or
an id, and PostgreSQL cannot even store NUL. So, for every text that reaches a model, the store or a page:

- refused, naming the field: NUL, C0 controls (tab, newline and carriage return are allowed in free text only),
  DEL, C1 controls and lone surrogates;
- removed before scoring, storing and display: format characters (Unicode category Cf: bidi embeddings, overrides,
  isolates and marks, zero-width space and joiners, word joiner, BOM, soft hyphen, tag characters) and the few
  letters and marks that draw nothing (Hangul fillers, the blank Braille pattern, variation selectors);
- a text with nothing left to read after that is refused: there is nothing to score.

Ids and names (employee_id, region, assignee) may hold none of these at all: an invisible character would make
a different id that looks the same. The raw text is kept where the audit needs it (serving keeps it beside the
cleaned one). Pure functions, no dependencies: both the API models and the Engine call them.
"""
from __future__ import annotations

import re
import unicodedata
from functools import cache

# Letters and marks outside category Cf that render as nothing.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f") | frozenset(chr(c) for c in range(0xFE00, 0xFE10))
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")
# Category Cc is exactly U+0000-001F and U+007F-009F; Cs the surrogates. A text without any of these (nearly
# every text) skips the per-character loop that names the first bad one: the API checks every text it receives.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _invisible(ch: str) -> bool:
    return ch in _BLANK or unicodedata.category(ch) == "Cf"


@cache
def _invisible_pattern() -> re.Pattern:
    """Every invisible character as one class, built once (one pass over Unicode) on first use."""
    chars = sorted(_BLANK | {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"})
    return re.compile("[" + "".join(re.escape(ch) for ch in chars) + "]")


def _has_invisible(text: str) -> bool:
    return _invisible_pattern().search(text) is not None


def control_problem(text: str, *, free_text: bool = True) -> str | None:
    """Why `text` is refused (the first bad character and where), or None. Free text may hold tab and newlines;
    ids and names may hold no control or invisible character at all."""
    if _CONTROL.search(text) is None and (free_text or not _has_invisible(text)):
        return None
    for position, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cs":
            return f"含有无效的代理字符 U+{ord(ch):04X}（第 {position + 1} 个字符）"
        if category == "Cc" and not (free_text and ch in _FREE_TEXT_CONTROLS):
            name = "空字符 NUL" if ch == "\x00" else "控制字符"
            return f"含有{name} U+{ord(ch):04X}（第 {position + 1} 个字符）"
        if not free_text and _invisible(ch):
            return f"含有不可见字符 U+{ord(ch):04X}（第 {position + 1} 个字符）"
    return None


def visible(text: str) -> str:
    """The text without its invisible characters (what is scored, stored and shown)."""
    if not _has_invisible(text):
        return text
    return "".join(ch for ch in text if not _invisible(ch))


def visible_positions(text: str) -> tuple[str, list[int] | range]:
    """The visible text and, for each of its characters, its position in `text` (to map offsets back)."""
    if not _has_invisible(text):
        return text, range(len(text))
    kept = [i for i, ch in enumerate(text) if not _invisible(ch)]
    return "".join(text[i] for i in kept), kept


def has_content(text: str) -> bool:
    """Whether anything is left to read once invisible characters and spaces are gone."""
    return bool(visible(text).strip())  # str.strip() removes exactly what str.isspace() calls space


def text_problem(text: str) -> str | None:
    """Why a free text (a post, a complaint, a note with content) is refused, or None."""
    problem = control_problem(text, free_text=True)
    if problem is None and not has_content(text):
        problem = "去除不可见字符与空白后没有内容，无法评估"
    return problem
