"""Request-scoped access to what `create_app` put on the application state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.ports import BrokerAccounts, CarePlanPublisher
from vigil.alerting.ladder import Ladder
from vigil.storage.claims import ClaimSettings


def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def get_accounts(request: Request) -> BrokerAccounts:
    return request.app.state.accounts


def get_care_plans(request: Request) -> CarePlanPublisher:
    return request.app.state.care_plans


def get_ladder(request: Request) -> Ladder:
    """The escalation ladder in force (`VIGIL_ESCALATION`), for an escalation that restarts it."""
    return request.app.state.settings.ladder


def get_claim_settings(request: Request) -> ClaimSettings:
    """What confirming a claim needs of the settings: the public URL, whether an insurer endpoint is set."""
    return ClaimSettings.from_settings(request.app.state.settings)


Pool = Annotated[AsyncConnectionPool, Depends(get_pool)]
Accounts = Annotated[BrokerAccounts, Depends(get_accounts)]
CarePlans = Annotated[CarePlanPublisher, Depends(get_care_plans)]
EscalationLadder = Annotated[Ladder, Depends(get_ladder)]
ClaimConfig = Annotated[ClaimSettings, Depends(get_claim_settings)]
