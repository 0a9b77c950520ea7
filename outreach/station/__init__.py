"""The village station: syncs its buffer from the county server, plays on its own, takes alerts, reports back.

Imports only the standard library, APScheduler (+ SQLAlchemy for its job
store), paho-mqtt and miniaudio: never the planner (pydub, sqlmodel, FastAPI).
"""
