"""The one error hierarchy: every refusal, from a backend rule or from the HTTP façade, is an
``AvalaError`` carrying the status Avala answers with, a human ``detail`` and, for 400s, the fields at
fault. The app turns any of them into DRF JSON with a single ``except`` (moto's ``ServiceException``,
LocalStack's ``CommonServiceException``). Each class also derives from the builtin exception it
refines, so ``except ValueError`` and friends keep working where code relies on them.
"""

from __future__ import annotations

from typing import Any


class AvalaError(Exception):
    """A refusal: ``status``, ``detail``, optional field ``errors``, extra body keys and headers."""

    status = 400

    def __init__(self, detail: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.field = field
        self.errors = errors if errors is not None else ({field: [detail]} if field else None)
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The DRF-style JSON body: ``detail``, then ``errors`` (field -> messages) and any extra keys."""
        out: dict[str, Any] = {"detail": self.detail}
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


class Invalid(AvalaError, ValueError):
    """A request that is well-formed but breaks a rule (400); ``field`` names the culprit."""

    status = 400


class Forbidden(AvalaError, PermissionError):
    """The key's user may not do this (403)."""

    status = 403


class NotFound(AvalaError, LookupError):
    """No such object in this organisation (404)."""

    status = 404


class Conflict(AvalaError):
    """The request conflicts with the object's state (409)."""

    status = 409


class Gone(AvalaError):
    """The object existed and was withdrawn (410)."""

    status = 410


class PreconditionFailed(AvalaError):
    """A conditional request whose condition does not hold (412)."""

    status = 412


class TooLarge(AvalaError, ValueError):
    """A body or an upload over a cap or a quota (413)."""

    status = 413


def summarize(errors: dict[str, list[str]], where: str) -> str:
    """``Invalid <where>: field: first message; ...`` over at most three fields."""
    summary = "; ".join(f"{field}: {msgs[0]}" for field, msgs in list(errors.items())[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"Invalid {where}: {summary}{more}"
