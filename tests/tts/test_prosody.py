"""Word boundaries for the neural voice: jieba's words as Biaobei prosody marks, its cache in the build folder."""

from __future__ import annotations

import pytest

from outreach.tts import prosody


@pytest.mark.parametrize(("text", "marked"), [
    ("村民朋友们请注意防范电信诈骗", "村民#1朋友们#1请注意#1防范#1电信#1诈骗"),
    ("要理赔先找客服", "要理赔#1先找#1客服"),
    ("骗子会冒用别人的身份证", "骗子#1会冒用#1别人的#1身份证"),
    ("拨打九六幺幺零", "拨打#1九六幺幺零"),
    ("电话一三八一二三四五六七八", "电话#1一三八#1一二三四#1五六七八"),
], ids=["particle-leans-back", "monosyllable-leans-forward", "de", "hotline-one-group", "phone-3-4-4"])
def test_prosodic_words(text: str, marked: str) -> None:
    assert prosody.mark_words(text) == marked


def test_word_marks_and_shipped_front_end() -> None:
    assert prosody.mark_words("要理赔先找客服", "words") == "要#1理赔#1先找#1客服"
    assert prosody.mark_words("要理赔先找客服", "chars") == "要理赔先找客服"


def test_no_mark_before_er() -> None:
    assert "#1儿" not in prosody.mark_words("那儿的孩子在哪儿玩")


def test_cache_goes_to_the_given_folder_once(tmp_path) -> None:
    made = prosody.prepare_cache(tmp_path)
    assert made == tmp_path / prosody.CACHE_FILE and made.stat().st_size > 1_000_000
    stamp = made.stat().st_mtime_ns
    assert prosody.prepare_cache(tmp_path) == made and made.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [prosody.CACHE_FILE]  # no temporary file left


def test_key_words_are_the_warnings_and_hotlines() -> None:
    text = "千万不要挂断，拨打九六幺幺零一定要接，电话一三八一二三四五六七八"
    marked = "".join(c if key else "_" for c, key in zip(text, prosody.emphasis(text)))
    assert marked == "千万不要_____九六幺幺零_______一三八一二三四五六七八"
