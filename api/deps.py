"""Request-scoped access to what `create_app` put on the application state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.ports import BrokerAccounts, CarePlanPublisher


def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def get_accounts(request: Request) -> BrokerAccounts:
    return request.app.state.accounts


def get_care_plans(request: Request) -> CarePlanPublisher:
    return request.app.state.care_plans


Pool = Annotated[AsyncConnectionPool, Depends(get_pool)]
Accounts = Annotated[BrokerAccounts, Depends(get_accounts)]
CarePlans = Annotated[CarePlanPublisher, Depends(get_care_plans)]
