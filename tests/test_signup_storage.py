"""Signup (a new tenant whose key works at once) and storage configs (write-only credentials, the
``organization`` scope, the offline connection test), through the official SDK, its CLI and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess

import avala
import httpx
import pytest
from avala.errors import AvalaError, NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli

HOME = "acme-robotics"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12"
ROLE_ARN = "arn:aws:iam::123456789012:role/avala-access"
GCS_JSON = json.dumps({"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----\nX\n",
                       "client_email": "svc@p.iam.gserviceaccount.com"})
CREDENTIAL_KEYS = {"s3_access_key_id", "s3_secret_access_key", "s3_role_arn", "gc_storage_auth_json_content"}


def cli(mock, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = mock.env()
    if key:
        env["AVALA_API_KEY"] = key
    return avala_cli(env, *args)


def s3(client, name="Raw bucket", **extra):
    body = {"s3_bucket_name": "acme-raw", "s3_bucket_region": "us-east-1", "s3_auth_method": "access_key",
            "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET, **extra}
    return client.storage_configs.create(name=name, provider="aws_s3", **body)


# ── signup ───────────────────────────────────────────────────


def test_signup_creates_a_tenant_whose_key_works_at_once(mock):
    resp = avala.signup(email="Newcomer@Example.org", password="correct horse battery", first_name="New",
                        last_name="Comer", base_url=mock.base_url)
    assert resp.user.uid and resp.user.username == "newcomer" and resp.user.email == "Newcomer@Example.org"
    assert resp.user.first_name == "New" and resp.user.last_name == "Comer" and resp.user.in_waitlist is True
    assert resp.api_key.startswith("avk_") and resp.api_key not in (mock.api_key, SECOND_ORG_KEY)

    with avala.Client(api_key=resp.api_key, base_url=mock.base_url) as c:
        orgs = c.organizations.list().items
        assert len(orgs) == 1 and orgs[0].slug == "newcomer" and orgs[0].role == "owner"
        assert orgs[0].name == "New's workspace" and orgs[0].member_count == 1 and orgs[0].dataset_count == 0
        members = c.organizations.list_members("newcomer").items
        assert [(m.user_uid, m.role) for m in members] == [(resp.user.uid, "owner")]
        assert c.projects.list().items == [] and c.storage_configs.list().items == []
        created = c.storage_configs.create(name="mine", provider="gcs", gc_storage_bucket_name="newcomer-bucket",
                                           gc_storage_auth_json_content=GCS_JSON)
        assert created.provider == "gc_storage"
        assert [sc.uid for sc in c.storage_configs.list()] == [created.uid]
        with pytest.raises(NotFoundError):  # a new tenant sees nothing of the others
            c.organizations.get(HOME)
    with avala.Client(api_key=mock.api_key, base_url=mock.base_url) as acme:
        with pytest.raises(NotFoundError):
            acme.storage_configs.get(created.uid)
        with pytest.raises(NotFoundError):
            acme.organizations.get("newcomer")
    r = cli(mock, "-o", "json", "storage-configs", "list", key=resp.api_key)
    assert r.returncode == 0, r.stderr
    assert [row["uid"] for row in json.loads(r.stdout)] == [created.uid]


def test_signup_rules_and_no_password_echo(mock):
    url = mock.base_url + "/signup/"
    r = httpx.post(url, json={"email": "pw@example.com", "password": "s3cret-Passw0rd"})
    assert r.status_code == 201 and "s3cret-Passw0rd" not in r.text and "password" not in r.text
    assert set(r.json()) == {"user", "api_key"}
    again = httpx.post(url, json={"email": "PW@example.com", "password": "another-password"})
    assert again.status_code == 409 and "another-password" not in again.text
    weak = httpx.post(url, json={"email": "weak@example.com", "password": "short7!"})
    assert weak.status_code == 400 and "short7!" not in weak.text and "password" in weak.json()["errors"]
    assert httpx.post(url, json={"email": "x@example.com"}).status_code == 400
    # no key needed, and a key is not required either way
    with pytest.raises(ValidationError):
        avala.signup(email="weak2@example.com", password="1234567", base_url=mock.base_url)
    with pytest.raises(AvalaError) as e:  # a seeded user's address is registered too
        ada = httpx.get(mock.base_url + "/users/me/", headers={"X-Avala-Api-Key": mock.api_key}).json()
        avala.signup(email=ada["email"], password="long enough password", base_url=mock.base_url)
    assert e.value.status_code == 409
    # the weak attempt created nothing: the address is still free
    assert httpx.post(url, json={"email": "weak@example.com", "password": "now-long-enough"}).status_code == 201


def test_async_signup_and_async_storage_client(mock):
    async def run():
        resp = await avala.async_signup(email="async@example.com", password="async password 1", base_url=mock.base_url)
        async with avala.AsyncClient(api_key=resp.api_key, base_url=mock.base_url) as c:
            made = await c.storage_configs.create(name="a", provider="s3", s3_bucket_name="async-bucket",
                                                  s3_auth_method="iam_role", s3_role_arn=ROLE_ARN)
            got = await c.storage_configs.get(made.uid, organization=resp.user.username)
            tested = await c.storage_configs.test(made.uid)
            info = await c.storage_configs.setup_info()
            listed = await c.storage_configs.list()
            await c.storage_configs.delete(made.uid)
            after = await c.storage_configs.list()
            return resp, made, got, tested, info, listed, after

    resp, made, got, tested, info, listed, after = asyncio.run(run())
    assert made.provider == "aws_s3" and made.s3_auth_method == "iam_role" and got.uid == made.uid
    assert tested == {"verified": True} and info.external_id.startswith("avala-")
    assert [x.uid for x in listed] == [made.uid] and after.items == []


# ── storage configs ──────────────────────────────────────────


def test_seeded_configs_list_get_and_cli(client, mock):
    configs = client.storage_configs.list().items
    assert [c.provider for c in configs] == ["aws_s3", "aws_s3", "gc_storage"]
    keyed, keyless, gcs = configs
    assert keyed.is_verified and keyed.last_verified_at and keyed.s3_auth_method == "access_key"
    assert keyed.s3_bucket_name == "acme-robotics-raw-captures" and keyed.s3_bucket_region == "us-west-2"
    assert keyless.s3_auth_method == "iam_role" and keyless.s3_is_accelerated is True and not keyless.is_verified
    assert gcs.gc_storage_bucket_name == "acme-robotics-archive" and gcs.gc_storage_prefix == "exports/"
    for c in configs:
        assert c.created_at and c.updated_at and client.storage_configs.get(c.uid).model_dump() == c.model_dump()
    r = cli(mock, "storage-configs", "list")
    assert r.returncode == 0 and all(c.uid in r.stdout for c in configs), r.stdout + r.stderr
    r = cli(mock, "-o", "json", "storage-configs", "get", keyed.uid)
    assert r.returncode == 0, r.stderr
    detail = json.loads(r.stdout)
    assert detail["s3_bucket_name"] == "acme-robotics-raw-captures" and detail["is_verified"] == "Yes"
    r = cli(mock, "storage-configs", "test", keyless.uid)
    assert r.returncode == 0 and "Connection test passed." in r.stdout
    assert client.storage_configs.get(keyless.uid).is_verified is True


def test_create_never_returns_credentials_and_test_verifies(client, http, mock):
    made = s3(client, s3_bucket_prefix="raw/", s3_is_accelerated=True)
    assert made.provider == "aws_s3" and made.s3_bucket_prefix == "raw/" and made.s3_is_accelerated is True
    assert made.is_verified is False and made.last_verified_at is None
    for r in (http.get(f"storage-configs/{made.uid}/"), http.get("storage-configs/", params={"limit": 100})):
        assert r.status_code == 200
        assert KEY_ID not in r.text and SECRET not in r.text and not CREDENTIAL_KEYS & set(json.dumps(r.json()).split('"'))
    assert made.uid in {c.uid for c in client.storage_configs.list(limit=100)}

    mock.advance(60)
    assert client.storage_configs.test(made.uid) == {"verified": True}
    after = client.storage_configs.get(made.uid)
    assert after.is_verified is True and after.last_verified_at is not None and after.last_verified_at > made.created_at

    with pytest.raises(AvalaError) as e:
        s3(client)  # same name in the same organisation
    assert e.value.status_code == 409
    client.storage_configs.delete(made.uid)
    with pytest.raises(NotFoundError):
        client.storage_configs.get(made.uid)
    with pytest.raises(NotFoundError):
        client.storage_configs.test(made.uid)
    with pytest.raises(NotFoundError):
        client.storage_configs.delete(made.uid)
    assert made.uid not in {c.uid for c in client.storage_configs.list(limit=100)}
    assert s3(client).uid != made.uid  # the name is free again


def test_missing_provider_fields_answer_400_with_field_errors(http):
    cases = [
        ({"provider": "aws_s3", "s3_bucket_name": "b", "s3_access_key_id": KEY_ID}, {"s3_secret_access_key"}),
        ({"provider": "aws_s3", "s3_bucket_name": "b", "s3_auth_method": "iam_role"}, {"s3_role_arn"}),
        ({"provider": "aws_s3", "s3_bucket_name": "b"}, {"s3_access_key_id", "s3_secret_access_key"}),
        ({"provider": "aws_s3", "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}, {"s3_bucket_name"}),
        ({"provider": "gc_storage", "gc_storage_bucket_name": "b"}, {"gc_storage_auth_json_content"}),
        ({"provider": "google_cloud_storage"}, {"gc_storage_bucket_name"}),
        ({"provider": "azure", "s3_bucket_name": "b"}, {"provider"}),
    ]
    for body, fields in cases:
        r = http.post("storage-configs/", json={"name": "incomplete", **body})
        assert r.status_code == 400, (body, r.text)
        assert fields <= set(r.json()["errors"]), (body, r.json())
        assert SECRET not in r.text and KEY_ID not in r.text
    assert [c["name"] for c in http.get("storage-configs/").json()["results"]].count("incomplete") == 0


def test_connection_test_reports_each_problem_without_quoting_secrets(client, mock):
    bad = client.storage_configs.create(
        name="Broken", provider="aws_s3", s3_bucket_name="Bad_Bucket", s3_bucket_region="mars-1",
        s3_access_key_id="not-a-key-id", s3_secret_access_key="short-secret-value")
    result = client.storage_configs.test(bad.uid)
    assert result["verified"] is False
    assert set(result["errors"]) == {"s3_bucket_name", "s3_bucket_region", "s3_access_key_id", "s3_secret_access_key"}
    assert "not-a-key-id" not in json.dumps(result) and "short-secret-value" not in json.dumps(result)
    assert client.storage_configs.get(bad.uid).is_verified is False
    r = cli(mock, "storage-configs", "test", bad.uid)
    assert "Connection test failed." in r.stdout and "s3_bucket_region" in r.stdout

    role = client.storage_configs.create(name="Role", provider="aws_s3", s3_bucket_name="ok-bucket",
                                         s3_auth_method="iam_role", s3_role_arn="arn:aws:iam::12:role/x")
    assert set(client.storage_configs.test(role.uid)["errors"]) == {"s3_role_arn"}
    gcs = client.storage_configs.create(name="GCS", provider="gc_storage", gc_storage_bucket_name="ok-bucket",
                                        gc_storage_auth_json_content="{not json")
    assert client.storage_configs.test(gcs.uid)["errors"]["gc_storage_auth_json_content"] == ["The service-account key is not valid JSON."]
    partial = client.storage_configs.create(name="GCS2", provider="gcs", gc_storage_bucket_name="ok-bucket",
                                            gc_storage_auth_json_content=json.dumps({"type": "service_account"}))
    assert "project_id" in client.storage_configs.test(partial.uid)["errors"]["gc_storage_auth_json_content"][0]


def test_organization_scope_and_setup_info(client, http):
    client.organizations.create(name="Ada Imports")
    home_info = client.storage_configs.setup_info()
    assert home_info.avala_aws_account_id.isdigit() and len(home_info.avala_aws_account_id) == 12
    assert client.storage_configs.setup_info(organization=HOME) == home_info == client.storage_configs.setup_info()
    other_info = client.storage_configs.setup_info(organization="ada-imports")
    assert other_info.external_id != home_info.external_id
    assert other_info.avala_aws_account_id == home_info.avala_aws_account_id

    scoped = s3(client, name="Imports bucket", organization="ada-imports")
    assert [c.uid for c in client.storage_configs.list(organization="ada-imports")] == [scoped.uid]
    assert scoped.uid not in {c.uid for c in client.storage_configs.list(organization=HOME, limit=100)}
    assert scoped.uid not in {c.uid for c in client.storage_configs.list(limit=100)}
    assert client.storage_configs.get(scoped.uid, organization="ada-imports").uid == scoped.uid
    assert client.storage_configs.get(scoped.uid).uid == scoped.uid  # visible without a scope
    with pytest.raises(NotFoundError):  # but not as another organisation's config
        client.storage_configs.get(scoped.uid, organization=HOME)
    home_cfg = client.storage_configs.list().items[0]
    with pytest.raises(NotFoundError):
        client.storage_configs.get(home_cfg.uid, organization="ada-imports")
    s3(client, name="Raw bucket", organization="ada-imports")  # names are unique per organisation only
    for call in (
        lambda: client.storage_configs.list(organization="globex-vision"),
        lambda: client.storage_configs.setup_info(organization="nope"),
        lambda: s3(client, name="x", organization="globex-vision"),
        lambda: client.storage_configs.get(home_cfg.uid, organization="globex-vision"),
    ):
        with pytest.raises(NotFoundError):
            call()
    # deleting the organisation deletes its configs
    client.organizations.delete("ada-imports")
    with pytest.raises(NotFoundError):
        client.storage_configs.get(scoped.uid)


def test_other_tenant_cannot_reach_configs(client, mock):
    mine = client.storage_configs.list().items
    with avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url) as second:
        theirs = second.storage_configs.list().items
        assert len(theirs) == 3 and {c.uid for c in theirs}.isdisjoint({c.uid for c in mine})
        assert all(c.name.startswith("globex-vision") for c in theirs)
        for c in mine:
            with pytest.raises(NotFoundError):
                second.storage_configs.get(c.uid)
            with pytest.raises(NotFoundError):
                second.storage_configs.test(c.uid)
            with pytest.raises(NotFoundError):
                second.storage_configs.delete(c.uid)
        with pytest.raises(NotFoundError):
            second.storage_configs.list(organization=HOME)
        assert second.storage_configs.setup_info().external_id != client.storage_configs.setup_info().external_id
    assert [c.uid for c in client.storage_configs.list()] == [c.uid for c in mine]


def test_action_post_bodies_and_pagination(client, http):
    uid = client.storage_configs.list().items[0].uid
    assert http.post(f"storage-configs/{uid}/test/").status_code == 200
    assert http.post(f"storage-configs/{uid}/test/", json={}).status_code == 200
    assert http.post(f"storage-configs/{uid}/test/", json={"x": 1}).status_code == 400
    for i in range(4):
        s3(client, name=f"bulk {i}")
    first = client.storage_configs.list(limit=5)
    rest = client.storage_configs.list(limit=5, cursor=first.next_cursor)
    assert len(first.items) == 5 and len(rest.items) == 2 and not rest.has_more
    assert {c.uid for c in first.items}.isdisjoint({c.uid for c in rest.items})
