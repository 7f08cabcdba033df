"""The harness verdict: per-operation cases and failures by check, a conformance score, and renderings
(rich table in the terminal, JSON, JUnit XML, HTML) so CI can keep or display it.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.markup import escape
from rich.table import Table

MAX_EXAMPLES_KEPT = 5  # failure messages kept per (operation, check)
# Characters a terminal would obey or XML 1.0 cannot hold (tab, newline and carriage return stay).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: object) -> str:
    """Text that may quote the server under test, safe in a terminal and in XML: control characters become U+FFFD."""
    return _CONTROL.sub("\ufffd", str(text))


def shown(text: object) -> str:
    """``clean`` text for rich: the server's words are never read as markup (``[/red]`` in a body)."""
    return escape(clean(text))


@dataclass
class OperationResult:
    operation_id: str
    cases: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    waived: Counter[str] = field(default_factory=Counter)
    messages: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Report:
    base_url: str
    operations: dict[str, OperationResult] = field(default_factory=dict)
    duration: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the harness could not run something (network, schema)

    def op(self, operation_id: str) -> OperationResult:
        if operation_id not in self.operations:
            self.operations[operation_id] = OperationResult(operation_id)
        return self.operations[operation_id]

    def add_cases(self, operation_id: str, n: int = 1) -> None:
        self.op(operation_id).cases += n

    def fail(self, operation_id: str, check: str, message: str) -> None:
        result = self.op(operation_id)
        result.failures[check] += 1
        kept = result.messages.setdefault(check, [])
        if len(kept) < MAX_EXAMPLES_KEPT and message not in kept:
            kept.append(message)

    def waive(self, operation_id: str, check: str) -> None:
        self.op(operation_id).waived[check] += 1

    @property
    def cases(self) -> int:
        return sum(r.cases for r in self.operations.values())

    @property
    def failures(self) -> int:
        return sum(sum(r.failures.values()) for r in self.operations.values())

    def failed_checks(self) -> dict[str, set[str]]:
        """check name -> operations it failed on."""
        out: dict[str, set[str]] = {}
        for r in self.operations.values():
            for check in r.failures:
                out.setdefault(check, set()).add(r.operation_id)
        return out

    @property
    def score(self) -> float:
        """Share of tested operations with no failing check, in percent (Microcks-style); 0 when the
        harness could not run (unreachable target, unknown operation)."""
        if self.errors:
            return 0.0
        tested = [r for r in self.operations.values() if r.cases or r.failures]
        return round(100.0 * sum(r.ok for r in tested) / len(tested), 2) if tested else 0.0

    @property
    def passed(self) -> bool:
        return self.failures == 0 and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "passed": self.passed,
            "score": self.score,
            "cases": self.cases,
            "failures": self.failures,
            "duration_s": round(self.duration, 2),
            "errors": self.errors,
            "notes": self.notes,
            "operations": {
                r.operation_id: {"cases": r.cases, "failures": dict(r.failures), "waived": dict(r.waived), "messages": r.messages}
                for r in sorted(self.operations.values(), key=lambda r: r.operation_id)
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_junit(self) -> str:
        suite = ET.Element("testsuite", name="avala-contract", tests=str(len(self.operations)),
                           failures=str(sum(not r.ok for r in self.operations.values())),
                           errors=str(len(self.errors)), time=f"{self.duration:.3f}")
        for r in sorted(self.operations.values(), key=lambda r: r.operation_id):
            case = ET.SubElement(suite, "testcase", classname="avala-contract", name=clean(r.operation_id))
            for check, n in sorted(r.failures.items()):
                failure = ET.SubElement(case, "failure", type=check, message=f"{check}: {n} failure(s)")
                failure.text = clean("\n".join(r.messages.get(check, [])))
        for err in self.errors:
            case = ET.SubElement(suite, "testcase", classname="avala-contract", name="harness")
            ET.SubElement(case, "error", message=clean(err))
        return ET.tostring(suite, encoding="unicode")

    def to_html(self) -> str:
        rows = []
        for r in sorted(self.operations.values(), key=lambda r: (r.ok, r.operation_id)):
            fails = "<br>".join(f"<b>{html.escape(c)}</b> ×{n}: " + html.escape(clean("; ".join(r.messages.get(c, [])[:2])))
                                for c, n in sorted(r.failures.items()))
            rows.append(f"<tr class={'ok' if r.ok else 'bad'}><td>{html.escape(r.operation_id)}</td>"
                        f"<td>{r.cases}</td><td>{fails or 'ok'}</td></tr>")
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            "<!doctype html><meta charset=utf-8><title>Avala contract report</title>"
            "<style>body{font-family:sans-serif}.bad{background:#fdd}.ok{background:#efe}td{padding:2px 8px}</style>"
            f"<h1>Avala contract: {verdict}</h1><p>{html.escape(self.base_url)} — score {self.score}% — "
            f"{self.cases} cases, {self.failures} failures, {self.duration:.1f} s</p>"
            + "".join(f"<p>error: {html.escape(clean(e))}</p>" for e in self.errors)
            + "<table><tr><th>operation</th><th>cases</th><th>failures by check</th></tr>" + "".join(rows) + "</table>"
        )

    def render(self, console: Console, all_rows: bool = False) -> None:
        table = Table(title=f"Avala contract — {shown(self.base_url)}")
        table.add_column("operation")
        table.add_column("cases", justify="right")
        table.add_column("failures by check")
        for r in sorted(self.operations.values(), key=lambda r: (r.ok, r.operation_id)):
            if r.ok and not all_rows:
                continue
            fails = ", ".join(f"{c} ×{n}" for c, n in sorted(r.failures.items()))
            table.add_row(shown(r.operation_id), str(r.cases), f"[red]{shown(fails)}[/red]" if fails else "[green]ok[/green]")
        if table.row_count:
            console.print(table)
        for r in self.operations.values():
            for check, msgs in r.messages.items():
                for m in msgs[:2]:
                    console.print(f"  [red]{shown(r.operation_id)}[/red] {shown(check)}: {shown(m)}")
        for e in self.errors:
            console.print(f"[red]error:[/red] {shown(e)}")
        for n in self.notes:
            console.print(f"[yellow]note:[/yellow] {shown(n)}")
        console.print(self.summary())

    def summary(self) -> str:
        """One line that says what happened: never a failed verdict next to "0 failures"."""
        head = f"{len(self.operations)} operations, {self.cases} cases, {self.duration:.1f} s"
        if self.passed:
            return f"[green]PASSED[/green] score {self.score}% — {head}, 0 failures"
        parts = []
        if self.failures:
            by_check = sorted(self.failed_checks().items(), key=lambda kv: -len(kv[1]))
            checks = ", ".join(f"{shown(check)} ({len(ops)} operation{'s' if len(ops) != 1 else ''})" for check, ops in by_check)
            parts.append(f"{self.failures} failures — {checks}")
        if self.errors:
            parts.append(f"{len(self.errors)} harness error(s) — {shown(self.errors[0][:160])}")
        return f"[red]FAILED[/red] score {self.score}% — {head}; " + "; ".join(parts)
