"""The one error base of outreach, and its small subclasses.

Library code raises these; only the CLI and the web layer catch them. Every
message names the file or field at fault and says what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class OutreachError(Exception):
    """Base of every error that outreach reports to a user."""


class ConfigError(OutreachError):
    """The workspace config file is missing a key or has a bad value."""


class ScriptError(OutreachError):
    """A script file in audio_scripts/ is invalid or not approved for air."""


class TextNormError(OutreachError):
    """Text could not be turned into its spoken form, or the lexicon is bad."""


class SynthesisFailed(OutreachError):
    """A TTS engine could not produce audio for a text."""


class UnknownVoice(SynthesisFailed):
    """A voice name that the chosen engine does not offer."""


class AudioError(OutreachError):
    """ffmpeg could not decode, master, measure or encode a file."""


class OutputError(OutreachError):
    """An output file or folder could not be written (read-only, disk full)."""


class RegistryError(OutreachError):
    """The county registry in schedules/ (villages, markets, slots) is invalid."""


class MarketRuleError(RegistryError):
    """A market-day rule such as 逢农历三、八 could not be understood."""


class CampaignError(OutreachError):
    """A campaign refers to unknown ids or has invalid fields.

    `problems` holds them one by one (outreach.yamlread.Problem: field, message, and the campaign
    id as `entry`), so a form can put each beside its field; it is empty for a file-level error.
    """

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class PlanError(OutreachError):
    """A plan cannot be built: bad date range, or a program that cannot fit."""


class DeliveryError(OutreachError):
    """Playback or export at slot time failed."""


class RecordError(OutreachError):
    """A confirmation or handout record (or CSV file of them) is invalid."""


class DatabaseError(OutreachError):
    """The database cannot be reached or its schema is out of date."""


class CoverageError(OutreachError):
    """A coverage query has invalid arguments (unknown campaign, bad range)."""
