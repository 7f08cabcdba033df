"""Inference providers (surface doc §2.10, §3.14): stored configurations of external model endpoints.

Secrets in ``config`` (API keys, tokens, passwords, access keys, auth headers) are stored as sent and
only ever leave masked (``masked_config``); a PATCH that sends a masked value back keeps the stored
secret. A test is simulated (no network I/O): it checks that the config has what the provider type
needs, "resolves" the host (only ``.invalid`` hosts fail), samples a latency from the world's seeded
generator and records ``last_test_at`` / ``last_test_success``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from avala_mock.simulators.clock import iso
from avala_mock.simulators.dispatch import check_url, unresolvable
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.records import Collection, collection, new_record, patch
from avala_mock.simulators.world import OrgStore, World

PROVIDER = "Inference provider"
MASK = "****"
SECRET_KEY = re.compile(
    r"api[_-]?key|secret|passw(or)?d|access[_-]?key|private[_-]?key|credential|authorization|(^|[_-])token$",
    re.IGNORECASE,
)  # ``token`` only as the last word, so ``max_tokens`` is not a secret
# What a test needs in ``config`` per provider type (any one key of each tuple); other types need a URL.
REQUIRED_CONFIG: dict[str, tuple[tuple[str, ...], ...]] = {
    "http": (("url",),),
    "custom": (("url",),),
    "sagemaker": (("endpoint_name", "endpoint"), ("region",)),
    "openai": (("api_key",),),
    "anthropic": (("api_key",),),
}
URL_KEYS = ("url", "base_url", "endpoint_url")
LATENCY_MEDIAN_MS = {"sagemaker": 240.0, "openai": 380.0, "anthropic": 420.0}
UPDATABLE = ("name", "description", "provider_type", "config", "is_active", "project")


def providers(store: OrgStore) -> Collection:
    return collection(store, PROVIDER)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def mask(value: Any) -> str:
    """``****`` plus the last 4 characters of long string secrets; short or non-string ones fully."""
    return MASK + value[-4:] if isinstance(value, str) and len(value) >= 12 else MASK


def masked_config(config: Any) -> Any:
    """A copy of ``config`` with every secret-looking key's value masked, at any depth."""
    if isinstance(config, dict):
        return {k: (mask(v) if is_secret_key(str(k)) and v not in (None, "") else masked_config(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [masked_config(v) for v in config]
    return config


def _keep_secrets(new: Any, old: Any) -> Any:
    """Merge a replacement config: secret values sent back masked (``****…``) keep the stored value."""
    if not isinstance(new, dict):
        return new
    old = old if isinstance(old, dict) else {}
    out = {}
    for k, v in new.items():
        if is_secret_key(str(k)) and isinstance(v, str) and v.startswith(MASK) and k in old:
            out[k] = old[k]
        else:
            out[k] = _keep_secrets(v, old.get(k))
    return out


def _check(store: OrgStore, fields: dict[str, Any]) -> dict[str, Any]:
    clean = dict(fields)
    for key in ("name", "provider_type"):
        if key in clean and not str(clean[key]).strip():
            raise Invalid(f"{key}: may not be blank.", field=key)
    if "provider_type" in clean:
        clean["provider_type"] = clean["provider_type"].strip().lower()
    if clean.get("project") is not None and clean["project"] not in store.projects:
        raise Invalid(f"project: project {clean['project']!r} does not exist in this organisation.", field="project")
    return clean


def create_provider(world: World, store: OrgStore, fields: dict[str, Any]) -> dict[str, Any]:
    clean = _check(store, fields)
    record = new_record(world, store, {
        "name": clean["name"],
        "description": clean.get("description"),
        "provider_type": clean["provider_type"],
        "config": dict(clean.get("config") or {}),
        "is_active": clean.get("is_active", True),
        "project": clean.get("project"),
        "last_test_at": None,
        "last_test_success": None,
    })
    return providers(store).add(record)


def update_provider(world: World, store: OrgStore, provider: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """PATCH; a ``config`` sent replaces the stored one, except masked secrets sent back unchanged."""
    clean = _check(store, changes)
    if "config" in clean:
        clean["config"] = _keep_secrets(clean["config"], provider["config"])
    return patch(world, provider, clean, UPDATABLE)


def config_problem(provider_type: str, config: dict[str, Any]) -> str | None:
    """Why this config cannot work for its type, or None."""
    needs = REQUIRED_CONFIG.get(provider_type, (("url",),))
    for options in needs:
        if not any(config.get(k) not in (None, "") for k in options):
            return f"config is missing {' or '.join(repr(k) for k in options)}, required for provider_type {provider_type!r}."
    for key in URL_KEYS:
        url = config.get(key)
        if url in (None, ""):
            continue
        try:
            check_url(url, f"config.{key}")
        except Invalid:
            return f"config.{key} is not an absolute http(s) URL."
        if unresolvable(url):
            return f"could not resolve host {urlsplit(url).hostname!r} (simulated by avala-mock; no request was sent)."
    return None


def test_provider(world: World, provider: dict[str, Any]) -> dict[str, Any]:
    """Simulated connectivity test; records ``last_test_at`` / ``last_test_success`` either way."""
    now = world.clock.now()
    problem = config_problem(provider["provider_type"] or "", provider["config"] or {})
    latency = None
    if problem is None:
        median = LATENCY_MEDIAN_MS.get(provider["provider_type"], 120.0)
        latency = int(round(median * float(world.rng.lognormal(0.0, 0.2))))
        message = f"Endpoint reachable ({latency} ms, simulated by avala-mock)."
    else:
        message = f"Connection test failed: {problem}"
    provider["last_test_at"] = now
    provider["last_test_success"] = problem is None
    return {"success": problem is None, "message": message, "tested_at": iso(now), "latency_ms": latency}
