"""Delivery: resolved programs reach loudspeakers by channel: live play, USB packs, village stations."""

from __future__ import annotations

from enum import StrEnum

from outreach.planning.registry import Registry, Speaker, Village

__all__ = ["CHANNELS", "Channel", "channel_of", "served_by"]


class Channel(StrEnum):
    """A way a program reaches a loudspeaker: each is the delivery subpackage of that name."""

    LIVE = "live"  # the county's scheduler plays it at slot time
    STATIONS = "stations"  # a village station plays it from its manifest and buffer
    USB = "usb"  # a USB pack carries it to the village


# Which channel serves each speaker kind of county.yaml. A new channel is a subpackage, its Speaker
# kind in planning/registry.py and its entry here (and its jobs in delivery/scheduler.py).
CHANNELS: dict[Speaker, Channel] = {
    Speaker.NETWORKED: Channel.LIVE,
    Speaker.STATION: Channel.STATIONS,
    Speaker.OFFLINE: Channel.USB,
}
if set(CHANNELS) != set(Speaker):
    raise ImportError("delivery.CHANNELS 没有为每种 Speaker 指定送达渠道")


def channel_of(village: Village) -> Channel:
    """The channel that serves `village` (by its `speaker:` kind)."""
    return CHANNELS[village.speaker]


def served_by(registry: Registry, channel: Channel) -> list[Village]:
    """The villages `channel` serves, in registry order."""
    return [v for v in registry.villages.values() if CHANNELS[v.speaker] is channel]
