"""Backend rules on the manual clock, without HTTP: clock modes, the job engine, world building."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avala_mock.fixtures.world import WorldDefinitionError, build_world, load_definition
from avala_mock.simulators import autolabel
from avala_mock.simulators.clock import Clock, ClockError
from avala_mock.simulators.errors import Conflict, Invalid

TINY = {
    "organizations": [{
        "slug": "tiny", "api_key": "avk_tiny_key",
        "datasets": [{"slug": "d", "data_type": "image", "items": 300, "labels": ["a", "b", "c"]}],
        "projects": [{"name": f"p{i}", "dataset": "d", "items": 100, "labeled": 0.1} for i in range(3)],
    }],
    "models": {"yolo": {"failure_rate": 0.05}},
}


def tiny_world(seed: int = 1):
    world = build_world(TINY, seed=seed, clock=Clock("manual"))
    store = next(iter(world.stores.values()))
    return world, store, list(store.projects.values())


def test_clock_modes():
    manual = Clock("manual")
    t0 = manual.now()
    assert manual.now() == t0
    assert manual.advance(2.5) == t0 + 2.5
    with pytest.raises(ClockError):
        manual.advance(-1)
    with pytest.raises(ClockError):
        Clock("instant").advance(1)
    assert Clock("instant").work_scale == 0.0 and manual.work_scale == 1.0
    scaled = Clock.from_cli("20", False)
    assert scaled.mode == "scaled" and scaled.scale == 20.0
    assert Clock.from_cli("instant", False).mode == "instant"
    assert Clock.from_cli(None, True).mode == "manual"
    with pytest.raises(ClockError):
        Clock.from_cli("fast", False)
    with pytest.raises(ClockError):
        Clock.from_cli("-2", False)
    scaled.set_scale(5)
    assert scaled.scale == 5


def test_job_state_is_a_function_of_the_clock():
    world, store, (p, *_) = tiny_world()
    job = autolabel.create_job(world, store, p, confidence_threshold=0.5)
    now = world.clock.now()
    assert job.state(now).status == "pending"
    assert job.total == int((p.result_state == 0).sum()) > 0
    world.clock.advance(job.start_at - now)
    assert job.state(world.clock.now()).status == "running"
    mid = float(job.done_at[job.total // 2])
    world.clock.advance(mid - world.clock.now())
    s = job.state(world.clock.now())
    assert s.processed_items == job.total // 2 + 1
    assert s == job.state(world.clock.now())  # pure
    world.clock.advance(1000)
    end = job.state(world.clock.now())
    assert end.status == "completed" and end.processed_items == job.total and end.completed_at == job.end_at


def test_instant_clock_finishes_at_once():
    world = build_world(TINY, seed=3, clock=Clock("instant"))
    store = next(iter(world.stores.values()))
    p = next(iter(store.projects.values()))
    job = autolabel.create_job(world, store, p)
    assert job.state(world.clock.now()).status == "completed"


def test_same_seed_same_outcome():
    outcomes = []
    for _ in range(2):
        world, store, (p, *_) = tiny_world(seed=11)
        job = autolabel.create_job(world, store, p, confidence_threshold=0.4, dry_run=True)
        world.clock.advance(1000)
        outcomes.append((job.uid, job.state(world.clock.now()), job.summary(job.total)))
    assert outcomes[0] == outcomes[1]


def test_job_failure_from_model_settings():
    definition = {**TINY, "models": {"yolo": {"job_failure_rate": 1.0}}}
    world = build_world(definition, seed=5, clock=Clock("manual"))
    store = next(iter(world.stores.values()))
    p = next(iter(store.projects.values()))
    job = autolabel.create_job(world, store, p)
    world.clock.advance(1000)
    s = job.state(world.clock.now())
    assert s.status == "failed" and "stopped responding" in s.error_message
    assert s.processed_items < s.total_items
    assert s.processed_items == s.successful_items + s.failed_items + s.skipped_items
    assert autolabel.create_job(world, store, p).uid != job.uid  # a failed job does not block the project


def test_unknown_model_and_labels_are_invalid():
    world, store, (p, *_) = tiny_world()
    with pytest.raises(Invalid) as exc:
        autolabel.create_job(world, store, p, model_type="resnet")
    assert exc.value.field == "model_type"
    with pytest.raises(Invalid) as exc:
        autolabel.create_job(world, store, p, labels=["zebra"])
    assert exc.value.field == "labels"
    assert store.jobs == {}


def test_world_definition_errors():
    with pytest.raises(WorldDefinitionError):
        build_world({"organizations": [{"slug": "x", "api_key": "avk_k_1234", "projects": [{"name": "p", "dataset": "nope", "items": 1}]}]})
    bad = {"organizations": [{"slug": "Bad Slug", "api_key": "k"}]}
    from avala_mock.fixtures import world as fw

    errors = [e.message for e in fw._SCHEMA.iter_errors(bad)]
    assert errors
    default = load_definition()
    world = build_world(default, seed=0, clock=Clock("manual"))
    primary = next(iter(world.stores.values()))
    assert len(primary.projects) >= 11 and len(primary.datasets) >= 3
    unlabeled = sorted(int((p.result_state == 0).sum()) for p in primary.projects.values())
    assert unlabeled[-1] > 5000 and sum(100 <= u <= 1000 for u in unlabeled) >= 10


# ---- property test: the job invariants under any interleaving -------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 2), st.floats(0.0, 1.0), st.booleans()),
        st.tuples(st.just("advance"), st.floats(0.0, 8.0)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("poll"), st.integers(0, 20)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_job_invariants_under_random_interleavings(steps):
    world, store, projects = tiny_world(seed=2)
    last_seen: dict[str, tuple] = {}
    for step in steps:
        now = world.clock.now()
        jobs = list(store.jobs.values())
        if step[0] == "create":
            project = projects[step[1]]
            busy = any(j.project is project and j.is_active(now) for j in jobs)
            try:
                autolabel.create_job(world, store, project, confidence_threshold=step[2], dry_run=step[3])
                assert not busy
            except Conflict:
                assert busy
        elif step[0] == "advance":
            world.clock.advance(step[1])
        elif step[0] == "cancel" and jobs:
            job = jobs[step[1] % len(jobs)]
            before = job.state(now)
            try:
                autolabel.cancel_job(world, store, job)
                assert before.status in ("pending", "running")
            except Conflict:
                assert before.status in autolabel.TERMINAL
        elif step[0] == "poll" and jobs:
            jobs[step[1] % len(jobs)].settle(now)
        now = world.clock.now()
        for project in projects:  # one active job per project
            assert sum(j.project is project and j.is_active(now) for j in store.jobs.values()) <= 1
        for job in store.jobs.values():
            s = job.state(now)
            assert s.processed_items == s.successful_items + s.failed_items + s.skipped_items
            assert 0 <= s.processed_items <= s.total_items <= autolabel.MAX_ITEMS_PER_JOB
            assert 0.0 <= s.progress_pct <= 100.0
            prev = last_seen.get(job.uid)
            if prev is not None:
                assert s.processed_items >= prev[0], "progress went backwards"
                if prev[1] in autolabel.TERMINAL:
                    assert s.status == prev[1], "a terminal state changed"
            last_seen[job.uid] = (s.processed_items, s.status)
    # drafts written = successful items of non-dry-run jobs, per project (settled up to now)
    now = world.clock.now()
    for project in projects:
        for job in store.jobs.values():
            job.settle(now)
        drafts = int(np.count_nonzero(project.result_state == 2))
        expected = sum(j.state(now).successful_items for j in store.jobs.values() if j.project is project and not j.dry_run)
        assert drafts == expected
