"""One module per OpenAPI tag (``auto-label`` -> ``auto_label.py``); in it, one function per operationId.

Public functions of a handler module are handlers and nothing else; shared rendering lives in
``mock_server/wire.py``. Operations whose module or function does not exist yet answer 501.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

from avala_mock.mock_server.spec import Spec


def module_for_tag(tag: str) -> str:
    return "avala_mock.mock_server.handlers." + tag.replace("-", "_")


def collect(spec: Spec) -> dict[str, Callable]:
    """operationId -> handler, for the operations of ``spec`` that have one."""
    found: dict[str, Callable] = {}
    for op in spec.operations.values():
        name = module_for_tag(op.tag)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not: a bug, not a 501
                raise
            continue
        fn = getattr(module, op.operation_id, None)
        if callable(fn) and getattr(fn, "__module__", None) == module.__name__:
            found[op.operation_id] = fn
    return found


def all_handlers() -> dict[str, str]:
    """Every public function defined in a handler module -> its module (for the spec/handler test)."""
    out: dict[str, str] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("_") and fn.__module__ == module.__name__:
                out[name] = module.__name__
    return out
