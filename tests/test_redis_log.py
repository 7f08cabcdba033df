"""The Redis log's record format and bookkeeping (mock_server/replication.py ``RedisLog``), on fakeredis:
numbering, what a reader gets back, the snapshot's ``upto``, trimming at a checkpoint and the gap a
worker that fell behind a trim meets. Behaviour across real worker processes is tests/test_workers.py,
against a real redis-server."""

from __future__ import annotations

import fakeredis
import pytest

from avala_mock.mock_server.replication import RedisLog
from avala_mock.simulators.commandlog import unframe, unpack_snapshot


@pytest.fixture
def server():
    return fakeredis.FakeServer()


def log_of(server, worker: str, prefix: str = "w") -> RedisLog:
    return RedisLog("", prefix, worker, client=fakeredis.FakeRedis(server=server))


def op(i: int) -> dict:
    return {"k": "op", "op": "create_dataset", "t": 1.5 + i, "key": "d" * 64, "body": {"name": f"n{i}", "tags": [i, None]},
            "draws": [b"\x00\xff" * 4]}


def test_records_are_numbered_in_order_and_read_back_exactly(server):
    a = log_of(server, "a")
    assert [a.append(op(i)) for i in range(3)] == [0, 1, 2]
    assert a.position() == 3 and a.last_n == 2
    state, records = log_of(server, "b").read()
    assert state is None and records == [op(0), op(1), op(2)]  # bytes, None, floats and nesting survive
    raw = a.redis.xrange("w:log")
    fields = raw[0][1]
    assert set(fields) == {b"n", b"w", b"r"} and fields[b"w"] == b"a" and int(fields[b"n"]) == 0
    assert unframe(fields[b"r"])[0] == [op(0)]  # one CRC-framed msgpack record per entry


def test_a_reader_gets_only_what_is_new_and_whose(server):
    a, b, c = log_of(server, "a"), log_of(server, "b"), log_of(server, "c")
    a.append(op(0))
    b.read(), c.read()
    a.append(op(1))
    b.last_id, b.last_n = b.new_entries()[-1][0], 1  # b applies it (as catching up does), then writes
    b.append(op(2))
    new = c.new_entries()
    assert [(n, worker, rec["body"]["name"]) for _, rec, n, worker in new] == [(1, "a", "n1"), (2, "b", "n2")]
    assert not c.missed(new) and b.new_entries() == []


def test_a_checkpoint_stores_the_snapshot_and_trims_all_but_the_newest_entry(server):
    a = log_of(server, "a")
    for i in range(5):
        a.append(op(i))
    a.checkpoint(b"STATE", a.position())
    assert a.redis.xlen("w:log") == 1 and a.upto == 5
    assert unpack_snapshot(a.redis.get("w:snapshot")) == (b"STATE", 5)
    a.append(op(5))
    state, records = log_of(server, "late").read()  # a worker joining now: snapshot + records from 5 on
    assert state == b"STATE" and records == [op(5)]


def test_a_worker_behind_a_trim_sees_a_gap_and_one_that_is_current_does_not(server):
    a, behind, current = log_of(server, "a"), log_of(server, "behind"), log_of(server, "current")
    a.append(op(0))
    behind.read()
    for i in range(1, 4):
        a.append(op(i))
    current.read()
    a.checkpoint(b"S", a.position())  # trims 0..2, keeps 3
    assert behind.missed(behind.new_entries())  # it had applied 0 only: 1 and 2 are gone
    assert current.new_entries() == [] and not current.missed([])
    a.append(op(4))
    assert not current.missed(current.new_entries())


def test_due_asks_redis_before_checkpointing_again(server):
    a, b = log_of(server, "a"), log_of(server, "b")
    for i in range(4):
        a.append(op(i))
    assert a.due(4) and not a.due(5)
    a.checkpoint(b"S", a.position())
    b.read()
    b.append(op(4))
    assert not b.due(4)  # a checkpointed at 4: b's own view (upto 4 from read) agrees
    b.upto = 0  # a stale local view: Redis is asked, and says no
    assert not b.due(4) and b.upto == 4
