"""An independent conformance run: the plain ``schemathesis run`` CLI (not our harness, no waivers, no
hooks) against ``avala-mock serve`` with the shipped ``openapi.yaml``, every check and every phase.

    python bench/independent.py [--max-examples 10] [--seed 0] [--phases examples,coverage,fuzzing,stateful]

It answers two questions a user of the contract asks: is the spec as strict as the server (every
failure is listed by check, and a schema-valid request the server refuses shows up as
``positive_data_acceptance``), and can a tool that knows only the spec reach every operation (an
operation counts as reached when at least one of its requests got a 2xx). Reads schemathesis' own
reports (HAR for statuses, the JSON run report for failures), so nothing here judges the server itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import yaml
from _common import KEY, mock_server

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operations(spec: dict) -> list[tuple[str, str, re.Pattern[str]]]:
    """(operationId, METHOD, path regex) for every operation, literal paths before templated ones."""
    base = urlsplit(spec["servers"][0]["url"]).path.rstrip("/")
    found = []
    for path, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(base + path)) + "$")
        for method in METHODS:
            if method in item:
                found.append((item[method]["operationId"], method.upper(), pattern, path.count("{")))
    found.sort(key=lambda op: op[3])
    return [op[:3] for op in found]


def match(ops: list, method: str, path: str) -> str | None:
    for op_id, m, pattern in ops:
        if m == method and pattern.match(path):
            return op_id
    return None


MISSING_OBJECT = re.compile(r"does not exist|not found|no longer exists|no such ", re.IGNORECASE)
REASONS = (  # why a schema-valid request was refused, from the answer schemathesis quotes
    ("names an object that does not exist", lambda text: '"detail"' in text and MISSING_OBJECT.search(text)),
    ("integer literal beyond 64 bits (stated in prose)", lambda text: "Integer out of range" in text),
    ("page and cursor disagree (stated in prose)", lambda text: "page and cursor name different pages" in text),
    ("storage quota full (documented 413)", lambda text: "Storage quota exceeded" in text),
    ("service-account JSON inside a string (stated in prose)", lambda text: "service-account JSON key" in text),
    ("ordinal lookup parameters together (stated in prose)",
     lambda text: re.search(r"An ordinal lookup (needs a role|takes no cursor)|either ordinal or ordinals", text)),
)


def rejected_by_reason(junit: Path) -> Counter:
    """ST202 failures by reason, read from the answers quoted in schemathesis' JUnit report."""
    reasons: Counter = Counter()
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        for failure in list(case.findall("failure")) + list(case.findall("error")):
            text = (failure.get("message") or "") + (failure.text or "")
            for block in text.split("Schema-valid request rejected")[1:]:
                reason = next((name for name, match in REASONS if match(block[:1500])), "other (the spec is looser than the server)")
                reasons[reason] += 1
    return reasons


def run(args: argparse.Namespace) -> dict:
    spec = yaml.safe_load(SPEC.read_text())
    ops = operations(spec)
    out = Path(tempfile.mkdtemp(prefix="independent-"))
    with mock_server() as (_proc, base_url, _ready):
        config = out / "schemathesis.toml"
        config.write_text(f"[phases.stateful]\nmax-steps = {args.max_steps}\n")
        cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(SPEC), "--url", base_url,
               "-H", f"X-Avala-Api-Key: {KEY}", "--checks", "all", "--phases", args.phases,
               "--max-examples", str(args.max_examples), "--seed", str(args.seed), "--workers", "1",
               "--report", "har,json,junit", "--report-dir", str(out), "--no-color",
               "--suppress-health-check", "all", "--warnings", "off"]
        if args.continue_on_failure:
            cmd.append("--continue-on-failure")
        env = dict(os.environ)
        if args.hooks:  # the rules openapi.yaml states only in prose, taught to schemathesis
            env["SCHEMATHESIS_HOOKS"] = "avala_mock.contracts.schemathesis_hooks"
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - started
    statuses: dict[str, Counter] = defaultdict(Counter)
    for entry in json.loads(next(out.glob("har-*.json")).read_text())["log"]["entries"]:
        url = urlsplit(entry["request"]["url"])
        op_id = match(ops, entry["request"]["method"], url.path)
        statuses[op_id or "(no operation)"][entry["response"]["status"]] += 1
    summary = json.loads(next(out.glob("json-*.json")).read_text())
    failures = [(f["code"], f["title"], f["count"], f["operations"]) for f in summary["failures"]]
    rejected = rejected_by_reason(next(out.glob("junit-*.xml")))
    errors = [(e["title"], e["count"]) for e in summary["errors"]]
    all_ops = [op[0] for op in ops]
    reached = [op for op in all_ops if any(200 <= s < 300 for s in statuses.get(op, {}))]
    cases = sum(sum(c.values()) for c in statuses.values())
    return {"exit": done.returncode, "wall": wall, "cases": cases, "operations": len(all_ops), "reached": reached,
            "unreached": sorted(set(all_ops) - set(reached)), "failures": failures, "errors": errors,
            "statuses": statuses, "tail": done.stdout[-3000:], "report_dir": str(out), "rejected": rejected}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-examples", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    ap.add_argument("--max-steps", type=int, default=6, help="steps per stateful scenario (schemathesis' default: 6)")
    ap.add_argument("--continue-on-failure", action="store_true",
                    help="go on after a failure within a scenario (a stateful run otherwise ends at its first failure)")
    ap.add_argument("--hooks", action="store_true",
                    help="load avala_mock.contracts.schemathesis_hooks (the rules the spec states only in prose)")
    ap.add_argument("--verbose", action="store_true", help="list every failure title and unreached operation's statuses")
    args = ap.parse_args()
    r = run(args)
    print(f"schemathesis exit {r['exit']}, {r['cases']:,} requests in {r['wall']:.0f} s (reports in {r['report_dir']})")
    print(f"operations reached with a 2xx: {len(r['reached'])}/{r['operations']}")
    for op in r["unreached"]:
        print(f"  unreached {op}: {dict(r['statuses'].get(op, {}))}")
    print(f"failures: {sum(f[2] for f in r['failures'])} ({len(r['failures'])} kinds)")
    for code, title, count, where in r["failures"]:
        shown = where if args.verbose else where[:6]
        more = f" … and {len(where) - len(shown)} more" if len(where) > len(shown) else ""
        print(f"  {code} {title}: {count} on {len(where)} operations: {', '.join(shown)}{more}")
    for reason, count in r["rejected"].most_common():
        print(f"    schema-valid request rejected: {count} × {reason}")
    for title, count in r["errors"]:
        print(f"  error: {title} × {count}")
    if args.verbose:
        print(r["tail"])


if __name__ == "__main__":
    main()
