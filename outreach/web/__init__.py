"""The web dashboard (`outreach serve`): coverage, as-run logs, handouts, plans, packs and script review, in zh-CN."""

from outreach.web.app import create_app

__all__ = ["create_app"]
