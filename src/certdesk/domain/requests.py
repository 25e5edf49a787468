"""The office's paper forms as requests: what kinds there are, what each one carries, and the
two-person rule. Pure: the service (`services/requests.py`) loads, decides and writes."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import RequestState


class RequestKind(enum.StrEnum):
    DEPARTURE = "departure"  # revocation letter: revoke (affiliationChanged), close, token back
    POSITION_CHANGE = "position_change"  # position table: new position, no reissue
    LOST_TOKEN = "lost_token"  # carried out at once on filing (keyCompromise)
    RE_ENROLMENT = "re_enrolment"  # an enrolment code, or a token assigned


# What each kind needs in its details (beyond the person).
REQUIRED: dict[RequestKind, tuple[str, ...]] = {
    RequestKind.DEPARTURE: (),
    RequestKind.POSITION_CHANGE: ("position_code",),
    RequestKind.LOST_TOKEN: ("token_serial",),
    RequestKind.RE_ENROLMENT: (),  # token_serial optional: without one, an enrolment code
}
OPEN: tuple[RequestState, ...] = (RequestState.SUBMITTED, RequestState.APPROVED)


@dataclass(frozen=True)
class OfficeRequest:
    request_id: str
    kind: RequestKind
    person_id: str
    unit_code: str
    state: RequestState
    filed_by: str
    filed_at: dt.datetime
    details: dict[str, Any] = field(default_factory=dict)
    remark: str = ""
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    reason: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    attachment_name: str | None = None
    attachment_type: str | None = None


def parse_kind(kind: str) -> RequestKind:
    try:
        return RequestKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in RequestKind)
        raise CertdeskError("request.bad_kind", kind=kind, allowed=allowed) from None


def check_details(kind: RequestKind, details: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED[kind] if not str(details.get(key) or "").strip()]
    if missing:
        raise CertdeskError("request.missing_detail", kind=kind.value, detail=", ".join(missing))


def check_decider(request: OfficeRequest, actor: str, two_person: bool) -> None:
    """Only a submitted request is decided, and under the two-person rule never by its filer."""
    if request.state is not RequestState.SUBMITTED:
        raise CertdeskError(
            "request.not_submitted", request_id=request.request_id, state=request.state.value
        )
    if two_person and actor == request.filed_by:
        raise CertdeskError("request.own", request_id=request.request_id)


def overdue_days(departed_at: dt.datetime, return_days: int, now: dt.datetime) -> int:
    """Whole days a token is overdue: it is due `return_days` after its keeper left."""
    return max(0, (now - departed_at - dt.timedelta(days=return_days)).days)
