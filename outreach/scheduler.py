"""Job-store references written before the delivery package (`outreach.scheduler:play_due_job` …).

APScheduler keeps each job's function as a `module:function` string in the database; a county that
upgrades keeps its stored jobs (and their next run times), so those old references must still resolve.
New jobs name `outreach.delivery.scheduler`.
"""

from outreach.delivery.scheduler import export_job, play_due_job, preflight_job

__all__ = ["export_job", "play_due_job", "preflight_job"]
