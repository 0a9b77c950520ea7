"""Delivery: resolved programs reach loudspeakers by channel: live play, USB packs, village stations."""
