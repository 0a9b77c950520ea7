"""Ids made from Chinese titles (快递退款 → kuaidi-tuikuan), and 您是不是要找 for a name or id typed wrong.

People name scripts and campaigns in Chinese; files, URLs and JSON keep a short ASCII id. The id is
the title in pinyin without tones: words of the phrase dictionary pypinyin reads polyphones with
(银行 → yinhang) stay one word, other characters are paired (快递退款 → kuaidi-tuikuan), since most
Chinese words have two characters. Digits and Latin letters are kept; anything else separates words.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Container, Iterator, Mapping

from outreach.errors import OutreachError

__all__ = ["ID_MAX", "slug", "make_id", "did_you_mean", "resolve"]

ID_MAX = 40
"""The longest id made; a long title is cut at a word."""
_PIECES = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+")


def _han_words(run: str) -> Iterator[str]:
    """The pinyin words of a run of Chinese characters: dictionary phrases whole, the rest in pairs."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.seg.mmseg import seg

    syllables = lazy_pinyin(run, style=Style.NORMAL, errors="ignore")
    if len(syllables) != len(run):  # a character without a reading: one word a syllable keeps ids stable
        yield from syllables
        return
    at, single = 0, []
    for token in seg.cut(run):
        if len(token) == 1:
            single.append(syllables[at])
        else:
            yield from _pairs(single)
            single = []
            yield "".join(syllables[at:at + len(token)])
        at += len(token)
    yield from _pairs(single)


def _pairs(syllables: list[str]) -> Iterator[str]:
    for i in range(0, len(syllables), 2):
        yield "".join(syllables[i:i + 2])


def slug(title: str, *, max_len: int = ID_MAX) -> str:
    """The id words of `title`, joined with '-': lower-case letters, digits and '-' only ('' if none)."""
    text = unicodedata.normalize("NFKC", title).lower()
    words: list[str] = []
    for piece in _PIECES.findall(text):
        words += _han_words(piece) if not piece.isascii() else [piece]
    words = [re.sub(r"[^a-z0-9]", "", w) for w in words]
    out = ""
    for word in filter(None, words):
        joined = f"{out}-{word}" if out else word
        if len(joined) > max_len:
            return out or word[:max_len]
        out = joined
    return out


def make_id(title: str, taken: Container[str], *, fallback: str) -> str:
    """A new id for `title`, not in `taken`: the slug, else `fallback`; then -2, -3 … until it is free."""
    base = slug(title) or fallback
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def did_you_mean(wanted: str, names: Mapping[str, str], *, n: int = 3, cutoff: float = 0.5) -> str:
    """'您是不是要找：名称（id）、…？' for the entries (id → name) whose id or name is close to `wanted`; else ''.

    An entry with an empty name shows its id alone; `cutoff` is difflib's (0 to 1, how alike)."""
    wanted = unicodedata.normalize("NFKC", wanted).strip()
    by_key = {**{i: i for i in names}, **{name: i for i, name in names.items() if name}}
    close = difflib.get_close_matches(wanted, list(by_key), n=n + 2, cutoff=cutoff)
    ids = list(dict.fromkeys(by_key[c] for c in close))[:n]
    return f"您是不是要找：{'、'.join(f'{names[i]}（{i}）' if names[i] else i for i in ids)}？" if ids else ""


def resolve(kind: str, names: Mapping[str, str], text: str, listing: str,
            error: type[OutreachError] = OutreachError) -> str:
    """The id of the entry (id → name) whose id or name is `text`; else `error` with 您是不是要找 and then
    `listing`, which says where to see them all (运行 `outreach registry` 查看全部编号和名称)."""
    wanted = unicodedata.normalize("NFKC", text).strip()
    if wanted in names:
        return wanted
    named = [i for i, name in names.items() if name == wanted]
    if len(named) == 1:
        return named[0]
    if named:
        raise error(f"有 {len(named)} 个{kind}叫“{wanted}”：{'、'.join(named)}；请写编号")
    raise error(f"未知的{kind}“{wanted}”；{did_you_mean(wanted, names)}{listing}")
