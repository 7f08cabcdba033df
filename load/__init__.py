"""``avala-mock load``: a Locust load driver that behaves like Avala clients against any Avala-API server.

Locust monkey-patches the standard library with gevent, so it runs in a process of its own: ``cli`` only
builds Locust's command line and waits for it, and ``locustfile`` is what that process loads. The names
below are the contract between the two (the locustfile reads its settings from these variables).
"""

from __future__ import annotations

# behaviour name -> default weight (how often a simulated client picks it)
DEFAULT_MIX: dict[str, int] = {"browse": 5, "auto_label": 2, "fleet": 2, "agent": 1}

ENV_BASE_URL = "AVALA_LOAD_BASE_URL"
ENV_KEY = "AVALA_LOAD_KEY"
ENV_MIX = "AVALA_LOAD_MIX"  # JSON object, a validated mix
ENV_SEED = "AVALA_LOAD_SEED"
ENV_JOB_DEADLINE = "AVALA_LOAD_JOB_DEADLINE"  # seconds an auto-label job may take before it counts as failed
ENV_SUMMARY = "AVALA_LOAD_SUMMARY"  # where the locustfile writes the run's summary (JSON) as Locust quits

JOB_EVENT_TYPE = "JOB"
JOB_EVENT_NAME = "auto-label time-to-complete"
THROTTLED = "429 throttled"  # the failure message of every 429, counted for the summary's 429 share
SERVER_ERROR = "5xx server error"  # the prefix of every 5xx failure message
