"""The as-run log and field records: planned broadcasts, their outcomes, village confirmations, market handouts.

Split by record: `broadcasts` (the as-run log), `confirmations`, `confirm_links`
(the QR links of USB packs), `handouts`, `csvread` (strict CSV import) and `limits`
(caps shared by CLI, CSV and web).
"""

from outreach.records.broadcasts import (
    TRANSITIONS, BroadcastPlan, broadcast_plans, mark_program, program_status, record_exported, record_exported_many,
    record_planned,
)
from outreach.records.confirm_links import (
    ENTERED_BY_QR, LinkError, LinkProgram, confirm_by_link, issue_link, link_programs, link_url, list_links, open_link,
    rebind_link, revoke_links,
)
from outreach.records.confirmations import (
    CONFIRMATION_COLUMNS, SLOT_ALIASES, confirm_program, import_confirmations, parse_day,
)
from outreach.records.csvread import ImportReport, Pasted, read_csv
from outreach.records.handouts import (
    HANDOUT_COLUMNS, TOPIC_ALIASES, MarketDays, handout_key, import_handouts, market_day_warning, parse_topics,
    record_handout,
)
from outreach.records.limits import (
    MAX_LEAFLETS, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_PEOPLE, MIN_RECORD_DATE, check_count, check_name, check_note,
    check_record_day, county_today, parse_count,
)

__all__ = [
    "TRANSITIONS", "BroadcastPlan", "broadcast_plans", "mark_program", "program_status", "record_exported",
    "record_exported_many", "record_planned",
    "ENTERED_BY_QR", "LinkError", "LinkProgram", "confirm_by_link", "issue_link", "link_programs", "link_url",
    "list_links", "open_link", "rebind_link", "revoke_links",
    "CONFIRMATION_COLUMNS", "SLOT_ALIASES", "confirm_program", "import_confirmations", "parse_day",
    "ImportReport", "Pasted", "read_csv",
    "HANDOUT_COLUMNS", "TOPIC_ALIASES", "MarketDays", "handout_key", "import_handouts", "market_day_warning",
    "parse_topics", "record_handout",
    "MAX_LEAFLETS", "MAX_NAME_CHARS", "MAX_NOTE_CHARS", "MAX_PEOPLE", "MIN_RECORD_DATE", "check_count",
    "check_name", "check_note", "check_record_day", "county_today", "parse_count",
]
