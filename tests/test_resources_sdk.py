"""Projects, datasets, items, sequences and tasks through the official SDK (sync, async and CLI)."""

from __future__ import annotations

import asyncio

import avala
import pytest
from avala.errors import NotFoundError

from helpers import SECOND_ORG_KEY, avala_cli


def walk(list_fn, limit: int, **kwargs) -> list:
    out, cursor = [], None
    while True:
        page = list_fn(limit=limit, cursor=cursor, **kwargs)
        out += list(page)
        if not page.has_more:
            return out
        cursor = page.next_cursor


def test_current_user_and_projects(client, http):
    me = http.get("users/me/").json()
    assert me["username"] == "ada" and me["uid"]
    projects = walk(client.projects.list, 4)
    assert len(projects) == 11 == len({p.uid for p in projects})
    assert all(p.name and p.status == "active" and p.created_at for p in projects)
    for p in projects[:3]:
        assert client.projects.get(p.uid).model_dump() == p.model_dump()
    ts_family = http.get("projects/", params={"limit": 100}).json()["results"]  # the TS SDK's paths
    assert [p["uid"] for p in ts_family] == [p.uid for p in projects]
    with pytest.raises(NotFoundError):
        client.projects.get("nope")


def test_datasets_items_and_sequences(client):
    datasets = walk(client.datasets.list, 2)
    assert {d.slug for d in datasets} == {"street-scenes", "warehouse-shelves", "retail-products", "drive-logs"}
    image = next(d for d in datasets if d.slug == "warehouse-shelves")
    assert image.item_count == 3000 and image.data_type == "image" and image.status == "created"
    assert client.datasets.get(image.uid).uid == image.uid
    assert client.datasets.get_by_slug(image.owner_name, image.slug).uid == image.uid
    items = walk(client.datasets.list_items, 700, owner=image.owner_name, slug=image.slug)
    assert len(items) == 3000 == len({i.uid for i in items})
    one = client.datasets.get_item(image.owner_name, image.slug, items[1234].uid)
    assert one.uid == items[1234].uid and one.dataset == image.uid and one.url.endswith(".jpg")
    assert [d.slug for d in client.datasets.list(data_type="lidar")] == ["drive-logs"]
    assert [d.slug for d in client.datasets.list(name="RETAIL")] == ["retail-products"]

    lidar = next(d for d in datasets if d.slug == "drive-logs")
    seqs = walk(client.datasets.list_sequences, 3, owner=lidar.owner_name, slug=lidar.slug)
    assert len(seqs) == 4 and all(s.frames is None for s in seqs)
    detail = client.datasets.get_sequence(lidar.owner_name, lidar.slug, seqs[0].uid)
    assert detail.number_of_frames == len(detail.frames) == 24
    frame = client.datasets.get_frame(lidar.owner_name, lidar.slug, seqs[0].uid, 3)
    assert frame.images and frame.device_position is not None
    calib = client.datasets.get_calibration(lidar.owner_name, lidar.slug, seqs[0].uid)
    assert len(calib.cameras) == 3
    with pytest.raises(NotFoundError):
        client.datasets.get_item(image.owner_name, image.slug, "nope")


def test_tasks_filters(client):
    tasks = walk(client.tasks.list, 10)
    assert len(tasks) == 66 == len({t.uid for t in tasks})
    project = tasks[0].project
    mine = walk(client.tasks.list, 2, project=project)
    assert {t.uid for t in mine} == {t.uid for t in tasks if t.project == project}
    done = walk(client.tasks.list, 50, status="completed")
    assert done and all(t.status == "completed" for t in done)
    assert client.tasks.get(tasks[5].uid).name == tasks[5].name


def test_second_org_is_isolated(mock, client):
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    mine = {p.uid for p in walk(client.projects.list, 100)}
    theirs = {p.uid for p in walk(other.projects.list, 100)}
    assert len(theirs) == 2 and not mine & theirs
    with pytest.raises(NotFoundError):
        other.projects.get(next(iter(mine)))
    ds = client.datasets.list().items[0]
    with pytest.raises(NotFoundError):
        other.datasets.get(ds.uid)
    with pytest.raises(NotFoundError):
        other.datasets.list_items(ds.owner_name, ds.slug)
    task = client.tasks.list().items[0]
    with pytest.raises(NotFoundError):
        other.tasks.get(task.uid)


def test_async_client_lists(mock):
    async def go():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            projects = await ac.projects.list(limit=100)
            datasets = await ac.datasets.list()
            tasks = await ac.tasks.list(project=projects.items[0].uid)
            return projects, datasets, tasks

    projects, datasets, tasks = asyncio.run(go())
    assert len(projects.items) == 11 and len(datasets.items) == 4 and tasks.items


@pytest.mark.parametrize("args", [
    ["auto-label", "list"],
    ["projects", "list"],
    ["datasets", "list"],
    ["tasks", "list"],
])
def test_sdk_cli_lists(mock, client, args):
    if args[0] == "auto-label":
        client.auto_label_jobs.create(client.projects.list().items[2].uid)
    r = avala_cli(mock.env(), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    if args[0] == "auto-label":
        assert "pending" in r.stdout and "yolo" in r.stdout
