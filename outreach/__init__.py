"""outreach: rural loudspeaker and market-day outreach planner for county police."""

from outreach.errors import OutreachError

__all__ = ["OutreachError"]
__version__ = "0.1.0"
