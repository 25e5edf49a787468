"""The holder's pages: home, announcements, forms, support, and the finance demo area whose
pages need permissions (the position decides what a person sees).

A page whose data came with the login (`logged_in`, in the thread pool) renders on the event
loop (`async def`): one thread hand-off per page instead of two."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.domain.states import CertState
from certdesk.services.access import Principal
from certdesk.services.content import Announcement, get_form, list_forms
from certdesk.services.policy import renewal_policy
from certdesk.web.portal.guard import logged_in, permitted
from certdesk.web.portal.render import render
from certdesk.web.threads import in_thread

router = APIRouter(include_in_schema=False)
Me = Annotated[Principal, Depends(logged_in)]


async def newest(request: Request, me: Principal, limit: int) -> list[Announcement]:
    """The newest announcements: kept by the process until one more is published."""
    recent = request.app.state.services.announcements
    kept: list[Announcement] | None = recent.kept(me.announcements, limit)
    if kept is not None:
        return kept
    found: list[Announcement] = await in_thread(request, recent.read, me.announcements, limit)
    return found


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, me: Me) -> Response:
    ctx = request.app.state.ctx
    now = ctx.clock.now()
    decision = renewal_policy(ctx.config).decide(CertState.ACTIVE, me.not_after, now)
    # a renewal awaiting installation (read with the login) is offered inside the window only
    pending = me.pending_renewal if decision.allowed else None
    return render(
        request,
        "home.html",
        decision=decision,
        banner=decision.announce(now),
        days_left=(me.not_after - now).days,
        pending=pending,
        announcements=await newest(request, me, 3),
    )


@router.get("/announcements", response_class=HTMLResponse)
async def announcements(request: Request, me: Me) -> Response:
    return render(request, "announcements.html", announcements=await newest(request, me, 20))


@router.get("/forms", response_class=HTMLResponse)
def forms(request: Request, me: Me) -> Response:
    return render(request, "forms.html", forms=list_forms(request.app.state.ctx))


@router.get("/forms/{name}")
def form_download(request: Request, name: str, me: Me) -> Response:
    form, data = get_form(request.app.state.ctx, name)
    return Response(
        data,
        media_type=form.media_type,
        headers={"Content-Disposition": f'attachment; filename="{form.name}"'},
    )


@router.get("/support", response_class=HTMLResponse)
async def support(request: Request, me: Me) -> Response:
    return render(request, "support.html", support=request.app.state.ctx.config.support)


BUDGET = [
    ("Education", 1_250_000, 980_400),
    ("Health", 860_000, 512_300),
    ("Roads", 2_100_000, 1_640_000),
]
PAYMENTS = [
    ("PAY-2026-0141", "Office supplies", 12_800),
    ("PAY-2026-0142", "Bridge repair", 412_000),
]


@router.get("/finance/budget", response_class=HTMLResponse)
def budget(
    request: Request, me: Annotated[Principal, Depends(permitted("budget.view"))]
) -> Response:
    return render(request, "finance.html", title="Budget", rows=BUDGET, kind="budget")


@router.get("/finance/payments", response_class=HTMLResponse)
def payments(
    request: Request, me: Annotated[Principal, Depends(permitted("payment.approve"))]
) -> Response:
    return render(request, "finance.html", title="Payments", rows=PAYMENTS, kind="payments")
