"""The mutable part of a running server, shared by the Avala handlers and the control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from avala_mock.fixtures.files import FileAccess
from avala_mock.fixtures.world import build_world, load_definition
from avala_mock.mock_server import snapshot
from avala_mock.mock_server.access import control_token_for
from avala_mock.mock_server.durability import Durability
from avala_mock.mock_server.journal import Journal
from avala_mock.mock_server.ratelimit import RateLimiter
from avala_mock.mock_server.shaping import Shaping, load_scenario
from avala_mock.simulators import scenarios
from avala_mock.simulators.clock import Clock
from avala_mock.simulators.commandlog import FileLog
from avala_mock.simulators.world import World


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
    strict: bool = False  # record off-contract requests and coverage (mock_server/strict.py)
    rate_rules: list[dict] = field(default_factory=list)  # per operation/path buckets (mock_server/ratelimit.py)
    scenario_file: str | None = None  # a scenario YAML or shipped name (fixtures/scenarios/); overrides the above
    journal_size: int = 10_000  # request journal entries kept (oldest dropped)
    data_dirs: list[str] = field(default_factory=list)  # where the control API may read world/scenario files
    host: str = "127.0.0.1"  # the bound address: off loopback, the control API needs a token
    control_token: str | None = None  # required by the control API (generated when bound off loopback)
    allowed_hosts: list[str] = field(default_factory=list)  # Host header names the control API accepts besides loopback
    retention: int = 10_000  # finished deliveries / executions kept per organisation
    outbound_allow: list[str] = field(default_factory=list)  # when set, the only hosts/CIDRs events are sent to
    deterministic_secrets: bool = False  # secrets drawn from the seed (byte-identical replays) instead of os.urandom
    max_body_bytes: int = 2 * 1024 * 1024  # a request body past this is 413 (operations may set x-max-body-bytes)
    body_timeout: float = 10.0  # seconds for a whole request body to arrive (408 after)
    idle_timeout: float = 15.0  # seconds a connection may sit without a complete request (headers included)
    max_connections: int = 1000  # open connections; more are answered 503 and closed at once
    state_dir: str | None = None  # keep the state here (command log + snapshots); None: in memory only
    fsync: str = "batch"  # always | batch | never (simulators/commandlog.py FileLog)
    compact_every: int = 10_000  # log records between two snapshots
    redis_url: str | None = None  # share one world with other workers through this Redis (mock_server/replication.py)
    redis_prefix: str = "avala-mock"  # the keys of that world in Redis (workers of one world use the same)


@dataclass
class MockState:
    """The mutable part of a running server: the world (replaced on reset) and the rate limiter."""

    config: ServerConfig
    world: World = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self._pristine: tuple[tuple, bytes] | None = None  # the baseline world as built, for cheap resets
        cfg = self.config
        self.control_token, self.control_token_generated = control_token_for(cfg.host, cfg.control_token)
        self.control_hosts = frozenset(h.lower() for h in [cfg.host, *cfg.allowed_hosts])
        # The control API reads files from the operator's data directories only (shipped ones by name)...
        self.files = FileAccess(cfg.data_dirs)
        # ...while files named on the command line are the operator's own choice, with their neighbours.
        startup = FileAccess([*cfg.data_dirs, *(str(Path(f).resolve().parent) for f in (cfg.scenario_file, cfg.world_file) if f)])
        ref = cfg.scenario_file
        if ref and Path(ref).is_file():
            ref = str(Path(ref).resolve())
        self.scenario = load_scenario(ref, access=startup) if ref else None
        self.limiter = RateLimiter(self.config.rate_limit, self.config.rate_window, self.config.rate_rules)
        self.shaping = Shaping(self.config.seed)
        self.journal = Journal(self.config.journal_size)
        self.durability: Durability | None = None
        self.replicator = None
        if cfg.redis_url:
            from avala_mock.mock_server.replication import Replicator

            self.replicator = Replicator.for_state(self, cfg.redis_url, cfg.redis_prefix, cfg.compact_every)
            self.replicator.start(lambda: self.load(self.scenario))
            return
        if cfg.state_dir:
            self.durability = Durability(self, FileLog(cfg.state_dir, cfg.fsync), cfg.compact_every)
        if self.durability is None or not self.durability.restore():  # a state directory's world wins
            self.load(self.scenario)

    def load(self, scenario: dict | None) -> None:
        """Make ``scenario`` (already validated, see shaping.load_scenario) the baseline; None = the config."""
        previous = getattr(self, "definition", None), getattr(self, "scenario", None)
        self.definition = load_definition((scenario or {}).get("world") or self.config.world_file)
        self.scenario = scenario
        self._pristine = None
        try:
            self.reset()
        except Exception:  # e.g. a world that validates but cannot be built: keep the old baseline
            if previous[0] is not None and hasattr(self, "world"):
                self.definition, self.scenario = previous
                self._pristine = None
                self.reset()
            raise
        size = (scenario or {}).get("journal_size", self.config.journal_size)
        if size != self.journal.size:
            self.journal = Journal(size)

    def reset(self) -> None:
        """Back to the baseline: a fresh world, clock, shaping and backend scenarios; an empty journal."""
        scn, cfg = self.scenario or {}, self.config
        seed = scn.get("seed", cfg.seed)
        clock = clock_of(scn["clock"]) if "clock" in scn else Clock.from_cli(cfg.time_scale, cfg.manual_clock)
        baseline = (seed, repr(scn.get("backend", [])))  # with the definition, which load() invalidates
        if clock.mode == "manual" and self._pristine is not None and self._pristine[0] == baseline:
            self.world = snapshot.thaw(self._pristine[1])  # same world as a rebuild, ~8x cheaper
        else:
            self.world = build_world(self.definition, seed=seed, clock=clock, api_key=cfg.api_key,
                                     deterministic_secrets=cfg.deterministic_secrets, retention=cfg.retention)
            scenarios.install(self.world.shared, scn.get("backend", []))
            # A manual clock starts at a fixed instant, so a copy of the fresh world is exactly what the next
            # rebuild would give; other clocks start at the wall time, so those worlds are rebuilt.
            self._pristine = (baseline, snapshot.freeze(self.world)) if clock.mode == "manual" else None
        limits = scn.get("rate_limits", {})
        self.limiter.configure(limits.get("limit", cfg.rate_limit), limits.get("window", cfg.rate_window),
                               limits.get("rules", cfg.rate_rules))
        self.shaping.reseed(seed)
        self.shaping.set_latency(scn.get("latency", []))
        self.shaping.set_faults(scn.get("faults", []))
        self.journal.clear()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold the shared world's write lock around a change made off the request path (workers sharing a
        world: records reach the shared log in number order; one process: nothing to hold)."""
        if self.replicator is None:
            yield
            return
        async with self.replicator.exclusive():
            yield

    def parts(self) -> dict:
        """What a snapshot holds: the world and the baseline and shaping it runs under (not the request
        journal, strict mode's violations or rate-limit bucket levels: those describe this process's
        traffic, not the simulated service)."""
        return {"world": self.world, "definition": self.definition, "scenario": self.scenario,
                "limits": self.limiter.describe(), "shaping": self.shaping.describe(), "taken_at": self.world.clock.now()}

    def restore(self, saved: dict) -> None:
        """Adopt a snapshot's world, shaping, limits and baseline (see mock_server/snapshot.py)."""
        limits, shaping = saved["limits"], saved["shaping"]
        self.limiter.configure(limits["limit"], limits["window"], limits["rules"])
        self.scenario, self.definition, self._pristine = saved["scenario"], saved["definition"], None
        self.shaping = Shaping(shaping["seed"])
        self.shaping.set_latency(shaping["latency"])
        self.shaping.set_faults(shaping["faults"])
        self.world = saved["world"]


def clock_of(spec: dict) -> Clock:
    mode = spec.get("mode", "scaled" if "scale" in spec else "real")
    return Clock(mode, float(spec.get("scale", 1.0)))


STATE = web.AppKey("state", MockState)
