"""FastAPI dependencies: the app's state and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from .errors import APIError
from .state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.malsori
    return state


StateDep = Annotated[AppState, Depends(get_state)]


#: The answer to a request without the right key (the routes' and the middleware's).
KEY_MESSAGE = "invalid or missing API key (send 'Authorization: Bearer <key>')"
KEY_CHALLENGE = 'Bearer realm="malsori"'


def key_accepted(authorization: str, key: SecretStr | None) -> bool:
    """Does an ``Authorization`` header value carry ``key`` (any value when no key is set)?"""
    if key is None:
        return True
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), key.get_secret_value().encode()
    )


def require_api_key(request: Request, state: StateDep) -> None:
    """With ``MALSORI_API_KEY`` set: ``Authorization: Bearer <key>`` or 401. (Uploads are
    refused earlier, before their body is read: :class:`malsori.server.middleware.RequestGuard`.)"""
    if not key_accepted(request.headers.get("authorization", ""), state.settings.api_key):
        raise APIError(
            401,
            KEY_MESSAGE,
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": KEY_CHALLENGE},
        )


Authorized = [Depends(require_api_key)]


#: Form fields that may be sent more than once (OpenAI's list parameters).
REPEATABLE = frozenset({"timestamp_granularities[]", "timestamp_granularities", "include[]"})


async def single_fields(request: Request) -> None:
    """400 for a field sent twice (two files, two models): which one counts is not the
    client's to guess (the last one silently won)."""
    form = await request.form()  # the form FastAPI parsed for the endpoint (cached)
    for key in dict.fromkeys(form.keys()):
        if key not in REPEATABLE and len(form.getlist(key)) > 1:
            shown = key if len(key) <= 64 else key[:61] + "..."
            raise APIError(
                400,
                f"the field {shown!r} is given more than once; send it once",
                param=shown,
                code="duplicate_parameter",
            )


AudioRequest = [*Authorized, Depends(single_fields)]
