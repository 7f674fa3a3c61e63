"""What a linear text head reads after normalization: Weibo noise removed, negation and concession scopes marked.

Both steps run at inference (serving unpickles them with the model), after `TextNormalizer`, so the normalizer's
guarantees hold unchanged: company names are masked and traditional characters folded before anything here sees
the text, and every object is plain data (picklable, no compiled state kept on instances).

Cleaning (`WeiboCleaner`). Real posts carry repost chains (`//@name:`), mentions and short links. User names and
link codes are random strings: as char n-grams they are noise the model fits, and the behavioural suite shows
them flipping labels (a mention, a link or a trailing 。 added to a post changed its label). So repost markers
become "//", mentions "@", links are dropped and a sentence-final 。/. is stripped.

Scope marking (`mark_scopes`). A bag of char n-grams cannot tell "好" from the "好" in "并不是很好": the plain
n-gram fires either way. Classic NOT_-tagging (Das & Chen 2001; Pang et al. 2002) fixes that by rewriting the
words inside a negation scope; here, per character, each character after a negator up to the clause end (at most
8) is REPLACED by a copy shifted into a private code range, so negated polarity words become features of their
own. The clause after 虽然/尽管 (a concession, which the writer discounts) is marked the same way in a second
range. Negators and markers themselves stay plain; lexicalized words (不错, 不过, 无论, 非常, 未来, 别人 ...) are
not negators. Additive cue blocks (the marked spans as extra features beside the plain ones) were measured as the
alternative and lost to substitution; figures are on the model card and in bench/sentiment.py.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CLAUSE_END = r",.!?;:，。！？；：、~…\s\0\[\]"
# Characters after which 不/没/无/非/未/别 is not a negator (不错 = good, 无论 = whatever, 非常 = very ...) ...
_NOT_NEGATOR_AHEAD = {
    "不": "错|过|仅|少|久|断|禁|管|论|然|停|愧|可思议|亦乐乎|得不|知不觉|一会",
    "没": "错|想到",
    "无": "论|聊|语|奈|数|限|比|敌|辜|所谓|疑|非",
    "非": "常|要|得|凡|洲",
    "未": "来|免",
    "别": "人|的|墅|处|名|说",
}
# ... and characters before it that make it part of another word (除非, 特别, 毫无, 从未, 要不).
_NOT_NEGATOR_BEHIND = {"非": "除是莫", "别": "特区告差级个分类性识派鉴辨", "无": "毫", "未": "从", "没": "", "不": "要"}


def _negation_pattern() -> str:
    parts = [r"并非|并不是|不是|没有"]
    for negator, ahead in _NOT_NEGATOR_AHEAD.items():
        behind = _NOT_NEGATOR_BEHIND[negator]
        parts.append((f"(?<![{behind}])" if behind else "") + f"{negator}(?!{ahead})")
    return f"(?:{'|'.join(parts)})([^{CLAUSE_END}]{{1,8}})"


SCOPES = {  # scope name -> (pattern whose group 1 is the scope, code offset of its marked characters)
    "neg": (re.compile(_negation_pattern()), 0x40000),
    "concession": (re.compile(rf"(?:虽然|虽说|尽管|虽)([^{CLAUSE_END}]{{1,12}})"), 0x80000),
}
_MARKABLE = 0x20000  # BMP + SMP: the shifted copy of any such character stays inside its range (planes 4-5, 8-9)


def _utf32(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").copy()


def mark_scopes(texts: Sequence[str], scopes: Sequence[str] = ("neg", "concession")) -> list[str]:
    """Each text with the characters inside its negation / concession scopes replaced by their marked copies.

    One regex pass per scope over the batch joined by NUL (no scope crosses a NUL), the replacement in numpy.
    Where scopes overlap the first one listed wins. Lengths are unchanged.
    """
    if not texts:
        return []
    joined = "\0".join(texts)
    codes = _utf32(joined)
    done = np.zeros(len(codes), dtype=bool)
    for name in scopes:
        pattern, offset = SCOPES[name]
        spans = np.array([m.span(1) for m in pattern.finditer(joined)], dtype=np.int64).reshape(-1, 2)
        if not len(spans):
            continue
        lengths = spans[:, 1] - spans[:, 0]
        at = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(spans[:, 0],
                                                                                                       lengths)
        at = at[~done[at] & (codes[at] < _MARKABLE)]
        codes[at] += np.uint32(offset)
        done[at] = True
    return codes.tobytes().decode("utf-32-le", "surrogatepass").split("\0")


_URL = re.compile(r"https?://[0-9a-z./?=&_%#-]*")
_REPOST = re.compile(r"//@[^:\s/\0]{1,30}:")
_MENTION = re.compile(r"@[^\s:,.!?;@#/\[\]()\0]{1,30}")
_FINAL_PERIOD = re.compile(r"[。.\s]+(?=\0|$)")
_SPACES = re.compile(r"[^\S\0]+")


class WeiboCleaner:
    """Repost markers -> "//", mentions -> "@", links dropped, sentence-final 。/. stripped (normalized text in)."""

    def __call__(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        joined = _URL.sub(" ", "\0".join(texts))
        joined = _FINAL_PERIOD.sub("", joined)
        joined = _MENTION.sub("@", _REPOST.sub(" // ", joined))
        return [t.strip() for t in _SPACES.sub(" ", joined).split("\0")]


class TextView:
    """The text a linear head reads: normalized -> (cleaned) -> (scopes marked). Plain data, so it pickles with
    the model; `describe()` names it in the model's training params."""

    def __init__(self, clean: bool = True, scopes: Sequence[str] = ("neg", "concession")):
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"未知的范围标记 {sorted(unknown)}; 可选: {list(SCOPES)}")
        self.clean = bool(clean)
        self.scopes = tuple(scopes)

    def __call__(self, normalized: Sequence[str]) -> list[str]:
        texts = WeiboCleaner()(normalized) if self.clean else list(normalized)
        return mark_scopes(texts, self.scopes) if self.scopes else texts

    def describe(self) -> str:
        steps = (["weibo-clean"] if self.clean else []) + [f"mark:{s}" for s in self.scopes]
        return "+".join(steps) or "plain"

    def __eq__(self, other) -> bool:
        return isinstance(other, TextView) and (self.clean, self.scopes) == (other.clean, other.scopes)

    def __hash__(self) -> int:
        return hash((self.clean, self.scopes))

    def __repr__(self) -> str:
        return f"TextView(clean={self.clean}, scopes={self.scopes})"
