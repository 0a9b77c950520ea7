"""The licence-clean kokoro voice must be understood too: its approved library, on each recogniser.

The method and limits are test_intelligibility's; this module is apart so that pytest-xdist runs it on
one worker while the neural library is checked on the other (the kokoro render alone takes minutes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_intelligibility import asr, bench, check_limits, library_scores  # noqa: F401 (asr, bench: fixtures)

pytestmark = pytest.mark.slow


def test_every_approved_kokoro_clip_is_understood(rendered_build_kokoro: Path, bench, asr, repo_root: Path) -> None:  # noqa: F811
    check_limits(library_scores(rendered_build_kokoro, "kokoro", bench, asr, repo_root), "kokoro", asr.size)
