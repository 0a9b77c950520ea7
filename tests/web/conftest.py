"""Fixtures of the dashboard tests: the seeded test site and logged-in clients."""

from web_site import editor, seeded_db, site, viewer  # noqa: F401  (fixtures)
