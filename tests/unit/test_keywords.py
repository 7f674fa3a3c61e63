"""Per-tenant keyword library: hits with positions in the original text, across scripts and widths."""
from __future__ import annotations

import pytest
import yaml

from features.keywords import KeywordLibrary, KeywordLibraryError

LIBRARY = {
    "common": {"sensitive": {"leak": [{"term": "数据安全", "severity": 3, "aliases": ["数据泄露"]},
                                      {"term": "泄露", "severity": 3}],
                             "labour": [{"term": "加班", "severity": 1, "aliases": ["996"]}]}},
    "tenants": {
        "acme": {"companies": [{"name": "星启科技", "aliases": ["星启", "XQ科技"]}],
                 "values": [{"term": "用户第一", "severity": 3}, "创新"]},
        "other": {"companies": [{"name": "禾木集团"}]},
    },
}


@pytest.fixture
def library() -> KeywordLibrary:
    return KeywordLibrary.from_dict(LIBRARY, tenant="acme")


def test_hits_carry_positions_in_the_original_text(library):
    text = "听说星启科技又要加班，还有数据泄露"
    hits = library.find(text)
    assert [(h["term"], h["canonical"], h["category"], h["kind"], h["severity"]) for h in hits] == [
        ("星启科技", "星启科技", "company", None, 1), ("加班", "加班", "sensitive", "labour", 1),
        ("数据泄露", "数据安全", "sensitive", "leak", 3)]
    assert all(text[h["start"]:h["end"]] == h["term"] for h in hits)


def test_sensitive_topics_carry_their_kind_in_either_form():
    """Grouped by kind, or a plain list with `kind:` on each entry; a tenant may add a kind of its own."""
    grouped = KeywordLibrary.from_dict(LIBRARY, tenant="acme")
    listed = KeywordLibrary.from_dict({"tenants": {"acme": {"sensitive": [
        {"term": "数据安全", "severity": 3, "kind": "leak"},
        {"term": "返利骗局", "severity": 2, "kind": "dealer_fraud"}]}}},
        tenant="acme")
    assert grouped.kinds() == {"leak", "labour"} and listed.kinds() == {"leak", "dealer_fraud"}
    assert [(h["canonical"], h["kind"]) for h in listed.find("经销商说返利骗局，还有數據安全问题")] == [
        ("返利骗局", "dealer_fraud"), ("数据安全", "leak")]


def test_shipped_library_keeps_topics_of_different_kinds_apart():
    """The issue's complaint: 投诉, 加班, 裁员, 欠薪, 食品安全, 性骚扰 were one category with 泄露; now each term of the
    shipped library has exactly one kind, and leak holds only leak words."""
    library = KeywordLibrary.load()
    kind_of = {k.canonical: k.kind for k in library.keywords if k.category == "sensitive"}
    assert {kind_of[t] for t in ("投诉", "加班", "裁员", "欠薪", "食品安全", "性骚扰")} == {
        "exposure", "labour", "safety", "harassment"}
    leak = {c for c, kind in kind_of.items() if kind == "leak"}
    assert leak == {"数据安全", "泄露", "用户隐私", "商业秘密", "源代码"}
    assert all(k.kind is None for k in library.keywords if k.category != "sensitive")
    assert not library.find("产品界面又优化了，应届毕业生也能很快上手")  # 优化/毕业 alone are not layoffs


def test_traditional_and_full_width_text_is_found_at_original_positions(library):
    text = "😅星啟科技的數據安全？ＸＱ科技：用戶第一"
    hits = library.find(text)
    assert [h["canonical"] for h in hits] == ["星启科技", "数据安全", "星启科技", "用户第一"]
    assert [h["term"] for h in hits] == ["星啟科技", "數據安全", "ＸＱ科技", "用戶第一"]
    assert all(text[h["start"]:h["end"]] == h["term"] for h in hits)


def test_overlapping_terms_longest_wins_then_continues(library):
    hits = library.find("数据泄露后又泄露")  # 泄露 lies inside 数据泄露: one hit there, the next 泄露 on its own
    assert [(h["term"], h["start"], h["end"]) for h in hits] == [("数据泄露", 0, 4), ("泄露", 6, 8)]
    assert [h["term"] for h in library.find("星启科技")] == ["星启科技"]  # not also the alias 星启


def test_latin_and_digit_terms_need_boundaries(library):
    assert [h["term"] for h in library.find("19960 年")] == []
    assert [h["term"] for h in library.find("又是996!")] == ["996"]


@pytest.mark.parametrize("value", ["", None, float("nan"), 42, "no keywords here"])
def test_empty_or_odd_input_gives_no_hits(library, value):
    assert library.find(value) == []


def test_tenants_get_their_own_terms_plus_common():
    other = KeywordLibrary.from_dict(LIBRARY, tenant="other")
    assert [h["canonical"] for h in other.find("星启科技和禾木集团的数据安全")] == ["禾木集团", "数据安全"]


def test_company_names_cover_every_tenant(tmp_path):
    path = tmp_path / "keywords.yaml"
    path.write_text(yaml.safe_dump(LIBRARY, allow_unicode=True), encoding="utf-8")
    assert set(KeywordLibrary.company_names(path)) == {"星启科技", "星启", "XQ科技", "禾木集团"}


def test_shipped_library_loads_and_finds():
    library = KeywordLibrary.load()
    assert len(library) > 20
    categories = {h["category"] for h in library.find("星启科技用户数据泄露，违背用户第一")}
    assert categories == {"company", "sensitive", "value"}


@pytest.mark.parametrize("data, message", [
    ({"tenants": {"acme": {"sensitive": {"leak": ["泄密"]}}}}, r"tenants\.acme\.sensitive\.leak\[0\].*severity"),
    ({"tenants": {"acme": {"sensitive": [{"term": "泄密", "severity": 3}]}}},
     r"tenants\.acme\.sensitive\[0\] \(泄密\).*必须给出类别 kind"),
    ({"tenants": {"acme": {"sensitive": {"Leak Topic": [{"term": "泄密", "severity": 3}]}}}},
     r"sensitive\.Leak Topic: 敏感话题类别应为小写英文标识"),
    ({"tenants": {"acme": {"sensitive": {"leak": [{"term": "泄密", "severity": 3, "kind": "labour"}]}}}},
     r"sensitive\.leak\[0\]: 未知的键 \['kind'\]"),
    ({"tenants": {"acme": {"values": [{"term": "诚信", "kind": "leak"}]}}}, r"values\[0\]: 未知的键 \['kind'\]"),
    ({"tenants": {"acme": {"values": [{"term": "诚信", "severity": 5}]}}}, r"values\[0\] \(诚信\).*1、2 或 3"),
    ({"tenants": {"acme": {"topics": []}}}, "未知的分类"),
    ({"tenants": {}}, "tenants"),
    ({"tenants": {"acme": {"companies": [{"aliases": ["x"]}]}}}, "缺少 term"),
])
def test_bad_library_names_the_entry(data, message):
    with pytest.raises(KeywordLibraryError, match=message):
        KeywordLibrary.from_dict(data, tenant="acme")


def test_unknown_tenant_and_missing_file_are_clear(tmp_path):
    with pytest.raises(KeywordLibraryError, match="没有租户 'nobody'"):
        KeywordLibrary.from_dict(LIBRARY, tenant="nobody")
    with pytest.raises(KeywordLibraryError, match="不存在"):
        KeywordLibrary.load(tmp_path / "missing.yaml")
