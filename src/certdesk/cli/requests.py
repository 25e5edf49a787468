"""`certdesk request list|show|approve|reject|due-back`: the office's queue of requests.

The CLI is the office's own desk (its actor is `cli:<login>`): it calls the same services as the
console and the API, so the two-person rule holds here too — a request filed as `cli:<login>`
cannot be decided by the same login.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from certdesk.cli.output import emit_json, fields, say, table

if TYPE_CHECKING:
    from certdesk.domain.requests import OfficeRequest
    from certdesk.services.context import Context

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _as_dict(request: OfficeRequest) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in dataclasses.asdict(request).items()}


def _minute(at: object) -> str:
    return str(at)[:16].replace("T", " ") if at else ""


def register(app: typer.Typer, context: Callable[[], Context]) -> None:
    """Add the `request` commands, acting through `context()` (the office's context)."""
    request_app = typer.Typer(
        help="The office's requests: departure, position change, lost token, re-enrolment.",
        no_args_is_help=True,
    )
    app.add_typer(request_app, name="request")

    @request_app.command("list")
    def request_list(
        kind: Annotated[str | None, typer.Option(help="departure, position_change, …")] = None,
        unit: Annotated[str | None, typer.Option(help="Only this unit")] = None,
        state: Annotated[str | None, typer.Option(help="submitted, approved, …")] = None,
        older_than_days: Annotated[
            int | None, typer.Option(help="Filed at least N days ago")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """The queue, oldest first."""
        from certdesk.services import requests

        found = requests.list_requests(
            context(), kind=kind, unit_code=unit, state=state, older_than_days=older_than_days
        )
        if as_json:
            emit_json([_as_dict(r) for r in found])
            return
        table(
            "Requests / 申请",
            ["id", "kind", "person", "unit", "state", "filed by", "filed at"],
            [
                [
                    r.request_id,
                    r.kind.value,
                    r.person_id,
                    r.unit_code,
                    r.state.value,
                    r.filed_by,
                    _minute(r.filed_at),
                ]
                for r in found
            ],
        )

    @request_app.command("show")
    def request_show(request_id: str, as_json: JsonOpt = False) -> None:
        """One request with its details, decision and outcome."""
        from certdesk.services import requests

        found = requests.find_request(context(), request_id)
        if as_json:
            emit_json(_as_dict(found))
            return
        fields("Request / 申请", list(_as_dict(found).items()))

    @request_app.command("approve")
    def request_approve(request_id: str, as_json: JsonOpt = False) -> None:
        """Approve and carry out (never a request you filed yourself, unless two_person is off)."""
        from certdesk.services import requests

        decided = requests.approve(context(), request_id)
        if as_json:
            emit_json({"request": _as_dict(decided.request), "enrolment_code": decided.code})
            return
        state = decided.request.state.value
        say(
            f"Request {request_id}: {state} {decided.request.reason or ''}".rstrip(),
            f"申请 {request_id}：{state} {decided.request.reason or ''}".rstrip(),
        )
        if decided.code:
            say(
                f"Enrolment code (shown once): {decided.code}",
                f"注册码（仅显示一次）：{decided.code}",
            )

    @request_app.command("reject")
    def request_reject(
        request_id: str,
        reason: Annotated[str, typer.Option(help="Why (told to the filer)")],
    ) -> None:
        """Reject with a reason."""
        from certdesk.services import requests

        requests.reject(context(), request_id, reason)
        say(f"Request {request_id} rejected.", f"申请 {request_id} 已驳回。")

    @request_app.command("due-back")
    def request_due_back(as_json: JsonOpt = False) -> None:
        """Tokens still kept by people who left, and how many days overdue."""
        from certdesk.services import requests

        due = requests.tokens_due_back(context())
        if as_json:
            emit_json([dataclasses.asdict(d) for d in due])
            return
        table(
            "Tokens due back / 待退还的 USB Key",
            ["token", "person", "name", "unit", "left", "days overdue"],
            [
                [
                    d.token_serial,
                    d.person_id,
                    d.name,
                    d.unit_code,
                    _minute(d.departed_at),
                    d.overdue_days,
                ]
                for d in due
            ],
        )
