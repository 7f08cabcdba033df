"""What the harness created on the target, and taking it away again at the end of a run.

Every answer the harness gets (from schemathesis' generated requests and from our own checks) passes
``note``: a 2xx to a create operation names a new object (``uid``, ``slug`` ...). At the end ``run``
deletes them through the spec's own DELETE operations, newest first, and cancels the auto-label jobs
(which Avala cannot delete). What has no delete operation (a signup's user, a dataset, an upload) is
counted and named in the report, so the user knows what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from avala_mock.contracts.target import segment
from avala_mock.mock_server.spec import Spec

# create operationId -> (the operation that undoes it, the field of the created object it needs)
UNDO_OVERRIDES = {"create_auto_label_job": ("cancel_auto_label_job", "uid")}


@dataclass
class Created:
    create: str
    undo: str | None
    url: str | None  # the undo request's path (relative to the base URL), None when nothing can undo it


@dataclass
class Cleanup:
    spec: Spec
    base_path: str
    created: list[Created] = field(default_factory=list)
    _creates: list[tuple[re.Pattern, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        deletes = {op.path: op for op in self.spec.operations.values() if op.method == "DELETE"}
        self.undo: dict[str, tuple[str, str, str]] = {}  # create op -> (undo op, undo path template, field)
        for op in self.spec.operations.values():
            if op.method != "POST" or op.path.endswith(("/test/", "/cancel/", "/batch/", "/complete/", "/restore/")):
                continue
            self._creates.append((_template_regex(op.path), op.operation_id))
            override = UNDO_OVERRIDES.get(op.operation_id)
            if override:
                undo = self.spec.operations[override[0]]
                self.undo[op.operation_id] = (undo.operation_id, undo.path, override[1])
                continue
            for path, delete in deletes.items():
                parent, _, last = path.rstrip("/").rpartition("/")
                if parent + "/" == op.path and last.startswith("{"):
                    self.undo[op.operation_id] = (delete.operation_id, path, last.strip("{}"))

    def note(self, method: str, url: str, status: int, body: Any) -> None:
        """Remember the object a successful create answered with."""
        if method != "POST" or not 200 <= status < 300 or not isinstance(body, dict):
            return
        path = urlsplit(url).path
        if not path.startswith(self.base_path):
            return
        op_id = next((oid for regex, oid in self._creates if regex.fullmatch(path[len(self.base_path):])), None)
        if op_id is None:
            return
        undo = self.undo.get(op_id)
        if undo is None:
            self.created.append(Created(op_id, None, None))
            return
        undo_op, template, key = undo
        value = body.get(key) or body.get("uid")
        if isinstance(value, str) and value:
            undo_path = re.sub(r"\{[^}]+\}", lambda _: segment(value), template, count=1)  # value is no regex template
            self.created.append(Created(op_id, undo_op, undo_path))

    def run(self, target: Any) -> str:
        """Undo what can be undone (newest first); a one-line account for the report."""
        done, failed, left = 0, 0, {}
        for item in reversed(self.created):
            if item.url is None:
                left[item.create] = left.get(item.create, 0) + 1
                continue
            r = target.call(item.undo, "cleanup", "DELETE", item.url)
            if r is not None and (r.status_code < 300 or r.status_code in (404, 409)):
                done += 1  # 404: already gone; 409: a job that had already ended
            else:
                failed += 1
        kept = ", ".join(f"{n} × {op}" for op, n in sorted(left.items()))
        return (f"cleanup: {done} created object(s) deleted or cancelled"
                + (f", {failed} could not be" if failed else "")
                + (f"; left (no delete operation): {kept}" if kept else ""))


def _template_regex(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
