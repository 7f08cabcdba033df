"""Injected latency: one delay per request drawn from a seeded distribution.

Parameters are in milliseconds: ``fixed`` (``ms``), ``uniform`` (``min_ms``, ``max_ms``), ``normal``
(``mean_ms``, ``stddev_ms``; negative draws become 0), ``lognormal`` (``median_ms``, ``sigma`` of the
underlying normal, so ``ms = median_ms * exp(sigma * Z)``).

Delays are wall time, not virtual time: they model the network and Avala's front end as the client
feels them, like the rate limiter. On a manual clock virtual time never moves by itself, and on a
20x clock a 200 ms delay shrunk to 10 ms would no longer test a client's timeouts.
"""

from __future__ import annotations

import random
from typing import Any

MAX_LATENCY_S = 60.0  # no injected delay exceeds this (a typo must not wedge CI)


def sample_ms(spec: dict[str, Any], rng: random.Random) -> float:
    """One draw in milliseconds, before the [0, MAX_LATENCY_S] clamp."""
    dist = spec["distribution"]
    if dist == "fixed":
        return float(spec["ms"])
    if dist == "uniform":
        return rng.uniform(spec["min_ms"], spec["max_ms"])
    if dist == "normal":
        return rng.gauss(spec["mean_ms"], spec["stddev_ms"])
    return spec["median_ms"] * rng.lognormvariate(0.0, spec["sigma"])


def sample_seconds(spec: dict[str, Any], rng: random.Random) -> float:
    return min(max(sample_ms(spec, rng), 0.0) / 1000.0, MAX_LATENCY_S)
