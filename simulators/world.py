"""The world store: organisations and everything they own, kept per organisation so that tenant
isolation holds by construction (design principle 2). An API key resolves to one ``OrgStore``; every
lookup a request makes goes through that store and cannot see another organisation's objects.
"""

from __future__ import annotations

import functools
import hashlib
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avala_mock.simulators.clock import Clock
from avala_mock.simulators.errors import NotFound
from avala_mock.simulators.model import DEFAULT_PROFILES, GroundTruth, ModelProfile
from avala_mock.simulators.uidcolumn import UidColumn, UidIndex, draw_bits, uuid4_text

# result_state values of a project's items
NO_RESULT, HUMAN_RESULT, DRAFT_RESULT, ACCEPTED_RESULT, REJECTED_RESULT = 0, 1, 2, 3, 4
RESULT_STATUS = {HUMAN_RESULT: "submitted", DRAFT_RESULT: "draft", ACCEPTED_RESULT: "accepted", REJECTED_RESULT: "rejected"}


DEFAULT_RETENTION = 10_000


def key_digest(key: str) -> str:
    # Every request hashes its key (once for its bucket and authentication; again under a shared world's
    # lock and in the durable log); short keys, the only real ones, are remembered, so an invented 60 KB
    # key costs a hash and never a cache slot.
    return _short_key_digest(key) if len(key) <= 128 else hashlib.sha256(key.encode()).hexdigest()


@functools.lru_cache(maxsize=256)
def _short_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Ids:
    """Seeded uid source, so the same seed gives the same uids (design principle 4).

    Seeded with a label instead of the seed (``Ids("acme-robotics:fleet")``), a stream gives the same uids
    for every seed: the world build draws each organisation's objects from such streams, so the uids that
    openapi.yaml's examples name hold in the default world whatever ``--seed`` says."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def uid(self) -> str:
        with self._lock:
            return uuid4_text(self._rng.getrandbits(128))

    def many(self, n: int) -> list[str]:
        with self._lock:
            bits = [self._rng.getrandbits(128) for _ in range(n)]
        return [uuid4_text(b) for b in bits]

    def column(self, n: int) -> UidColumn:
        """``n`` uids as ``many(n)`` would give them, held as a column (uidcolumn.py)."""
        with self._lock:
            return UidColumn(*draw_bits(self._rng, n))

    def hex(self, n: int = 32) -> str:
        with self._lock:
            return f"{self._rng.getrandbits(4 * n):0{n}x}"


class Secrets:
    """Where secrets come from (signing keys, webhook and agent secrets, tokens): the operating system by
    default, so nothing secret can be worked out from the seed the banner prints; or, for byte-identical
    replays, a stream seeded from the seed apart from the ids (so uids are the same either way)."""

    __redact__ = ("_rng",)  # a seeded stream would let anyone with a shared snapshot predict new secrets

    def __init__(self, seed: int, deterministic: bool = False) -> None:
        self._rng = random.Random(f"avala-mock-secrets:{seed}") if deterministic else None
        self._lock = threading.Lock()
        self._capture: list[bytes] | None = None  # draws of the command running now (for the command log)
        self._replay: list[bytes] | None = None  # draws to hand out again while a logged command is replayed

    def _bits(self, k: int) -> int:
        size = (k + 7) // 8
        if self._replay:
            return int.from_bytes(self._replay.pop(0), "big")
        if self._rng is None:
            value = secrets.randbits(k)
        else:
            with self._lock:
                value = self._rng.getrandbits(k)
        if self._capture is not None:
            self._capture.append(value.to_bytes(size, "big"))
        return value

    @contextmanager
    def capturing(self) -> Iterator[list[bytes]]:
        """Collect what is drawn inside the block: a command's draws are part of its log record."""
        self._capture = drawn = []
        try:
            yield drawn
        finally:
            self._capture = None

    @contextmanager
    def replaying(self, draws: list[bytes]) -> Iterator[None]:
        """Hand out ``draws`` again, in order, to the command being replayed."""
        self._replay = list(draws)
        try:
            yield
        finally:
            self._replay = None

    def hex(self, n: int = 32) -> str:
        return f"{self._bits(4 * n):0{n}x}"

    def key(self, nbytes: int = 32) -> bytes:
        return self._bits(8 * nbytes).to_bytes(nbytes, "big")


@dataclass
class User:
    uid: str
    username: str
    email: str
    first_name: str = ""
    last_name: str = ""
    is_bot: bool = False


@dataclass
class Organization:
    uid: str
    name: str
    slug: str
    created_at: float
    description: str = ""
    industry: str | None = None
    visibility: str = "private"
    plan: str = "enterprise"


@dataclass
class Sequence:
    uid: str
    key: str
    seq: int
    status: str
    frames: list[dict]
    camera_calibration: list[dict]


class RowLookup:
    """Dataset item index -> project row, dict-like. A project's rows are usually one contiguous run of
    the dataset (the seeded ones always are): then it is arithmetic, not a dict of every row."""

    def __init__(self, rows: np.ndarray) -> None:
        n = len(rows)
        self.start = int(rows[0]) if n else 0
        self.n = n
        contiguous = n == 0 or int(rows[-1]) - self.start + 1 == n and bool(np.all(np.diff(rows) == 1))
        self.rows = None if contiguous else {int(r): i for i, r in enumerate(rows)}

    def get(self, index: int, default: int | None = None) -> int | None:
        if self.rows is not None:
            return self.rows.get(index, default)
        row = index - self.start
        return row if 0 <= row < self.n else default

    def __contains__(self, index: object) -> bool:
        return isinstance(index, (int, np.integer)) and self.get(int(index)) is not None

    def __getitem__(self, index: int) -> int:
        row = self.get(index)
        if row is None:
            raise KeyError(index)
        return row


@dataclass
class Dataset:
    uid: str
    name: str
    slug: str
    owner_name: str
    data_type: str
    visibility: str
    created_at: float
    updated_at: float
    seq: int
    labels: list[str]
    item_uids: Any  # list[str], or a UidColumn for seeded datasets (same interface: len, [i], iteration)
    gt: GroundTruth
    image_size: tuple[int, int] = (1280, 720)
    status: str = "created"
    sequences: list[Sequence] = field(default_factory=list)
    item_index: Any = field(default_factory=dict)  # uid -> index: a dict, or a UidIndex over a UidColumn
    model_outputs: dict[str, Any] = field(default_factory=dict)  # model family -> ModelOutput, sampled on first use
    sequence_index: dict[str, int] = field(default_factory=dict)
    # Added for create/health/transfer/bulk edit (simulators/datasets.py, simulators/annotations.py):
    indexing: Any = None  # Timeline creating -> created while a new dataset is indexed; None when seeded
    item_keys: list[str] | None = None  # storage keys of created datasets' items (None: images/NNNNNN.jpg)
    item_sequence: dict[int, str] = field(default_factory=dict)  # item index -> sequence uid (frames)
    declared_sequence: bool = False  # is_sequence as sent on create (TypeScript SDK)
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # create_metadata, industry, license, gpu_texture_format
    storage: dict[str, Any] = field(default_factory=dict)  # provider, bucket, prefix, import stats; never credentials
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)  # item/sequence uid -> object_uuid -> object
    bulk_projects: dict[str, str] = field(default_factory=dict)  # "object_type|object_name" -> project uid

    def __post_init__(self) -> None:
        uids = self.item_uids
        self.item_index = UidIndex(uids) if isinstance(uids, UidColumn) else {u: i for i, u in enumerate(uids)}
        self.sequence_index = {s.uid: i for i, s in enumerate(self.sequences)}

    @property
    def is_sequence(self) -> bool:
        return bool(self.sequences) or self.declared_sequence

    def settle(self, now: float) -> Dataset:
        """The dataset as of ``now``: a new dataset's indexing (``creating`` -> ``created``) advanced; once
        indexing has ended its timeline is dropped. Read state through this, never past it."""
        if self.indexing is not None:
            self.status = self.indexing.status(now)
            if self.indexing.done(now):
                self.updated_at = max(self.updated_at, self.indexing.steps[-1][1])
                self.indexing = None
        return self


@dataclass
class Project:
    uid: str
    name: str
    description: str
    task_type: str  # bounding_box | segmentation
    labels: list[str]
    dataset: Dataset
    rows: np.ndarray  # dataset item indices this project labels, in item order
    created_at: float
    updated_at: float
    seq: int
    status: str = "active"
    result_state: np.ndarray = field(default=None)  # type: ignore[assignment]
    result_job: np.ndarray = field(default=None)  # type: ignore[assignment]
    active_job: Any = None  # the latest AutoLabelJob; the engine decides if it is still active
    row_of_item: Any = field(default_factory=dict)  # dataset item index -> project row (RowLookup)

    def __post_init__(self) -> None:
        n = len(self.rows)
        if self.result_state is None:
            self.result_state = np.zeros(n, dtype=np.int8)
        if self.result_job is None:
            self.result_job = np.full(n, -1, dtype=np.int32)
        self.row_of_item = RowLookup(self.rows)

    def settle(self, now: float) -> Project:
        """The project as of ``now``: the drafts its latest auto-label job has produced by then are in
        ``result_state``/``result_job``. Read results through this, never past it."""
        if self.active_job is not None:
            self.active_job.settle(now)
        return self

    def label_mask(self, wanted: list[str] | None) -> np.ndarray:
        """Mask over the dataset's labels: in the project's taxonomy and (if given) in ``wanted``."""
        keep = set(self.labels) & set(wanted) if wanted else set(self.labels)
        return np.array([name in keep for name in self.dataset.labels], dtype=bool)


@dataclass
class Task:
    uid: str
    name: str
    type: str
    status: str
    project: str
    created_at: float
    updated_at: float
    seq: int


class OrgStore:
    """Everything one organisation owns. Objects are kept in insertion (``seq``) order."""

    def __init__(self, org: Organization, owner: User, bot: User) -> None:
        self.org = org
        self.owner = owner
        self.bot = bot
        self.users: dict[str, User] = {owner.uid: owner, bot.uid: bot}
        self.datasets: dict[str, Dataset] = {}
        self.projects: dict[str, Project] = {}
        self.tasks: dict[str, Task] = {}
        self.jobs: dict[str, Any] = {}
        self.jobs_by_seq: dict[int, Any] = {}
        self.collections: dict[str, Any] = {}  # kind -> simulators.records.Collection
        self.retention: int | None = None  # records kept per retained kind (set by the world)
        self._seq = 0
        self.lock = threading.RLock()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def dataset(self, uid: str) -> Dataset:
        try:
            return self.datasets[uid]
        except KeyError:
            raise NotFound(f"Dataset {uid!r} not found.") from None

    def dataset_by_slug(self, owner: str, slug: str) -> Dataset:
        for ds in self.datasets.values():
            if ds.slug == slug and ds.owner_name == owner:
                return ds
        raise NotFound(f"Dataset {owner}/{slug} not found.")

    def project(self, uid: str) -> Project:
        try:
            return self.projects[uid]
        except KeyError:
            raise NotFound(f"Project {uid!r} not found.") from None

    def task(self, uid: str) -> Task:
        try:
            return self.tasks[uid]
        except KeyError:
            raise NotFound(f"Task {uid!r} not found.") from None

    def job(self, uid: str) -> Any:
        try:
            return self.jobs[uid]
        except KeyError:
            raise NotFound(f"Auto-label job {uid!r} not found.") from None


class World:
    """All organisations, the API keys that reach them, the clock and the model profiles."""

    __redact__ = ("_primary",)

    def __init__(self, clock: Clock, seed: int, models: dict[str, ModelProfile] | None = None,
                 deterministic_secrets: bool = False) -> None:
        self.clock = clock
        self.seed = seed
        self.ids = Ids(seed)
        self.secrets = Secrets(seed, deterministic_secrets)
        self.retention = DEFAULT_RETENTION  # finished deliveries/executions kept per organisation
        self.rng = np.random.default_rng(seed)
        self.models: dict[str, ModelProfile] = dict(models or DEFAULT_PROFILES)
        self.stores: dict[str, OrgStore] = {}
        self._keys: dict[str, tuple[OrgStore, User]] = {}  # SHA-256 of the key -> its store and user
        self._primary: str | None = None  # the first organisation's key, which the world file or --api-key names
        self.definition: dict = {}
        self.shared: dict[str, Any] = {}  # world-level state outside any organisation (anonymous/public APIs)

    @contextmanager
    def labelled_ids(self, label: str) -> Iterator[None]:
        """While building, draw uids from a stream named ``label``, the same at every seed (see Ids)."""
        seeded, self.ids = self.ids, Ids(f"avala-mock-world:{label}")
        try:
            yield
        finally:
            self.ids = seeded

    def add_store(self, store: OrgStore) -> None:
        store.retention = self.retention
        self.stores[store.org.uid] = store

    def add_key(self, key: str, store: OrgStore, user: User, *, hashed: bool = False) -> None:
        """Keys are kept as digests, as a real service keeps them: state and snapshots never hold one.
        ``hashed``: ``key`` is already the digest (a world restored from a snapshot without secrets)."""
        if self._primary is None and not hashed:
            self._primary = key
        self._keys[key if hashed else key_digest(key)] = (store, user)

    def resolve_key(self, key: str) -> tuple[OrgStore, User] | None:
        return self._keys.get(key_digest(key))

    def resolve_digest(self, digest: str) -> tuple[OrgStore, User] | None:
        """The store and user of a key known by its digest (as the command log names it)."""
        return self._keys.get(digest)

    def primary_key(self) -> str | None:
        """The first organisation's key (the one the banner prints: configuration, not a tenant's secret)."""
        return self._primary
