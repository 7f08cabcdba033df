"""The mutable part of a running server, shared by the Avala handlers and the control API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from fixtures.world import build_world, load_definition
from mock_server.ratelimit import RateLimiter
from simulators.clock import Clock
from simulators.world import World


@dataclass
class ServerConfig:
    """Everything ``avala-mock serve`` can set; ``reset`` rebuilds the world from it."""

    seed: int = 0
    time_scale: str | float | None = None
    manual_clock: bool = False
    api_key: str | None = None
    world_file: str | None = None
    rate_limit: int = 6000
    rate_window: float = 60.0
    spec_path: Path | None = None
    storage_base_url: str | None = None  # where upload/download URLs point; default <server origin>/_storage


@dataclass
class MockState:
    """The mutable part of a running server: the world (replaced on reset) and the rate limiter."""

    config: ServerConfig
    world: World = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.definition = load_definition(self.config.world_file)
        self.limiter = RateLimiter(self.config.rate_limit, self.config.rate_window)
        self.reset()

    def reset(self) -> None:
        clock = Clock.from_cli(self.config.time_scale, self.config.manual_clock)
        self.world = build_world(self.definition, seed=self.config.seed, clock=clock, api_key=self.config.api_key)
        self.limiter.clear()


STATE = web.AppKey("state", MockState)
