"""Inference providers through the official SDK, its CLI and raw HTTP."""

from __future__ import annotations

import asyncio
import subprocess

import avala
import pytest
from avala.errors import NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli

API_KEY = "sk-live-0123456789abcdefWXYZ"


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), *args)


def provider_of_type(client, provider_type: str):
    return next(p for p in client.inference_providers.list(limit=100) if p.provider_type == provider_type)


def test_seeded_providers_are_populated_and_masked(client, http):
    web = provider_of_type(client, "http")
    assert web.name and web.description and web.is_active and web.created_at and web.updated_at
    assert web.config["url"].startswith("https://") and web.config["method"] == "POST" and web.config["timeout_s"] == 30
    assert web.config["headers"]["Authorization"].startswith("****")
    assert http.get(f"projects/{web.project}/").status_code == 200
    assert web.last_test_at is None and web.last_test_success is None
    sage = client.inference_providers.get(provider_of_type(client, "sagemaker").uid)
    assert sage.config["region"] == "us-west-2" and sage.config["endpoint_name"]
    assert sage.config["secret_access_key"].startswith("****") and sage.config["access_key_id"].startswith("****")
    assert "Bearer" not in http.get("inference-providers/").text


def test_provider_lifecycle_with_secret_masking(client, http):
    project = client.projects.list().items[0]
    made = client.inference_providers.create(
        name="Detector", provider_type="http", description="gateway", is_active=False, project=project.uid,
        config={"url": "https://inference.example.com/v1", "api_key": API_KEY, "max_tokens": 256,
                "headers": {"X-Api-Key": "abc"}},
    )
    assert made.config == {"url": "https://inference.example.com/v1", "api_key": "****WXYZ", "max_tokens": 256,
                           "headers": {"X-Api-Key": "****"}}
    assert (made.is_active, made.project, made.description) == (False, project.uid, "gateway")
    assert API_KEY not in http.get(f"inference-providers/{made.uid}/").text
    assert made.uid in [p.uid for p in client.inference_providers.list(limit=100)]

    # Sending the masked config back (as a client that round-trips the object does) keeps the secrets.
    back = client.inference_providers.update(made.uid, config={**made.config, "url": "https://inference.example.com/v2"})
    assert back.config["api_key"] == "****WXYZ" and back.config["url"].endswith("/v2")
    assert back.config["headers"] == {"X-Api-Key": "****"}
    renamed = client.inference_providers.update(made.uid, name="Detector v2", is_active=True)
    assert renamed.name == "Detector v2" and renamed.is_active and renamed.config == back.config
    rotated = client.inference_providers.update(made.uid, config={"url": "https://inference.example.com/v2",
                                                                   "api_key": "sk-new-key-000000001234"})
    assert rotated.config == {"url": "https://inference.example.com/v2", "api_key": "****1234"}
    assert client.inference_providers.get(made.uid).config["api_key"] == "****1234"

    client.inference_providers.delete(made.uid)
    with pytest.raises(NotFoundError):
        client.inference_providers.get(made.uid)
    with pytest.raises(NotFoundError):
        client.inference_providers.delete(made.uid)
    assert made.uid not in [p.uid for p in client.inference_providers.list(limit=100)]


def test_invalid_input_is_400_and_writes_nothing(client, http):
    foreign = http.get("projects/", headers={"X-Avala-Api-Key": SECOND_ORG_KEY}).json()["results"][0]["uid"]
    before = http.get("inference-providers/").json()["results"]
    ok = {"name": "n", "provider_type": "http", "config": {"url": "https://x.example.com"}}
    for body, field in [
        ({**ok, "project": "no-such-project"}, "project"),
        ({**ok, "project": foreign}, "project"),
        ({k: v for k, v in ok.items() if k != "config"}, "config"),
        ({k: v for k, v in ok.items() if k != "name"}, "name"),
        ({**ok, "provider_type": "  "}, "provider_type"),
        ({**ok, "config": "url=https://x"}, "config"),
    ]:
        r = http.post("inference-providers/", json=body)
        assert r.status_code == 400, body
        assert field in r.json()["errors"], r.json()
    with pytest.raises(ValidationError):
        client.inference_providers.create(name="x", provider_type="http", config={}, project="nope")
    assert http.get("inference-providers/").json()["results"] == before

    sage = provider_of_type(client, "sagemaker")
    r = http.patch(f"inference-providers/{sage.uid}/", json={"name": "renamed", "project": "no-such-project"})
    assert r.status_code == 400 and client.inference_providers.get(sage.uid).name == sage.name
    r = http.post("inference-providers/", json={**ok, "project": "nope", "config": {"api_key": API_KEY}})
    assert r.status_code == 400 and API_KEY not in r.text


def test_test_endpoint_checks_the_config_and_records_the_outcome(mock, client, http):
    web = provider_of_type(client, "http")
    r = http.post(f"inference-providers/{web.uid}/test/", json={})  # TypeScript sends {}
    body = r.json()
    assert r.status_code == 200 and body["success"] is True and 20 < body["latency_ms"] < 1000
    assert body["message"] and body["tested_at"].endswith("Z")
    after = client.inference_providers.get(web.uid)
    assert after.last_test_success is True and after.last_test_at is not None
    assert http.post(f"inference-providers/{web.uid}/test/", json={"dry": True}).status_code == 400

    mock.advance(60)
    cases = [
        ("http", {"method": "POST"}, "'url'"),
        ("http", {"url": "inference.example.com"}, "absolute"),
        ("http", {"url": "https://gpu.example.invalid/predict"}, "resolve"),
        ("sagemaker", {"endpoint_name": "sam"}, "'region'"),
        ("openai", {"model": "gpt-4o"}, "'api_key'"),
        ("custom-grpc", {"host": "x"}, "'url'"),
    ]
    for provider_type, config, needle in cases:
        p = client.inference_providers.create(name=provider_type, provider_type=provider_type, config=config)
        result = client.inference_providers.test(p.uid)
        assert result["success"] is False and needle in result["message"], (provider_type, result)
        got = client.inference_providers.get(p.uid)
        assert got.last_test_success is False and got.last_test_at > after.last_test_at
    fine = client.inference_providers.create(name="sm", provider_type="sagemaker",
                                             config={"endpoint_name": "sam", "region": "eu-west-1"})
    assert client.inference_providers.test(fine.uid)["success"] is True
    assert http.post("inference-providers/no-such/test/").status_code == 404

    assert "Connection test passed" in cli(mock, "inference-providers", "test", web.uid).stdout
    broken = client.inference_providers.create(name="b", provider_type="http", config={})
    out = cli(mock, "inference-providers", "test", broken.uid)
    assert out.returncode == 0 and "Connection test failed" in out.stdout


def test_another_organisation_cannot_see_or_touch_providers(mock, client):
    web = provider_of_type(client, "http")
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        theirs = [p.uid for p in other.inference_providers.list(limit=100)]
        assert theirs and web.uid not in theirs
        for call in (lambda: other.inference_providers.get(web.uid),
                     lambda: other.inference_providers.update(web.uid, name="stolen"),
                     lambda: other.inference_providers.test(web.uid),
                     lambda: other.inference_providers.delete(web.uid)):
            with pytest.raises(NotFoundError):
                call()
    finally:
        other.close()
    still = client.inference_providers.get(web.uid)
    assert still.name == web.name and still.last_test_at is None


def test_async_client_round_trip(mock):
    async def go():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            made = await ac.inference_providers.create(name="a", provider_type="anthropic",
                                                       config={"api_key": API_KEY, "model": "claude"})
            tested = await ac.inference_providers.test(made.uid)
            got = await ac.inference_providers.get(made.uid)
            upd = await ac.inference_providers.update(made.uid, description="async")
            listed = await ac.inference_providers.list(limit=100)
            await ac.inference_providers.delete(made.uid)
            return made, tested, got, upd, listed

    made, tested, got, upd, listed = asyncio.run(go())
    assert made.config == {"api_key": "****WXYZ", "model": "claude"} and tested["success"] is True
    assert got.last_test_success is True and upd.description == "async" and made.uid in [p.uid for p in listed]


def test_cli_lists_gets_and_creates(mock, client):
    web = provider_of_type(client, "http")
    listed = cli(mock, "inference-providers", "list")
    assert listed.returncode == 0 and "sagemaker" in listed.stdout and web.name in listed.stdout
    got = cli(mock, "-o", "json", "inference-providers", "get", web.uid)
    assert got.returncode == 0 and '"****' in got.stdout and web.config["url"] in got.stdout
    made = cli(mock, "inference-providers", "create", "--name", "cli", "--provider-type", "http",
               "--config", '{"url": "https://cli.example.com", "token": "abcdefghijklmnop"}')
    assert made.returncode == 0 and "Inference provider created" in made.stdout
    created = next(p for p in client.inference_providers.list(limit=100) if p.name == "cli")
    assert created.config == {"url": "https://cli.example.com", "token": "****mnop"}
