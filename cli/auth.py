"""Who is running the command line, and whether their role allows an action: the one place the CLI decides.

The user is, in this order:

1. ``HES_TOKEN`` set: the head-end user that token was issued to (``hes user token NAME``); an
   unknown token or a disabled user is refused.
2. Otherwise the OS login, mapped to a head-end user by ``hes user add NAME --os-user LOGIN``
   (``--os-user`` defaults to NAME).
3. Bootstrap: while the database has no user at all, the OS login acts as an admin, so that a
   fresh installation can add its first user (which must be an admin). From the first user on,
   an unmapped login is refused.

``require(action, engine, target)`` refuses what the role does not allow with one line on stderr
and exit code ``EXIT_REFUSED`` (4), and writes the refusal to the audit trail.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass

import typer
from sqlalchemy import Engine

from hes.config import load_settings
from hes.db import create_engine_for, upgrade
from hes.db.engine import session_factory, storage_errors
from hes.db.orders import record_audit
from hes.errors import HesError
from hes.events.users import allowed, count_users, find_by_os_user, find_by_token, required_role

__all__ = [
    "EXIT_REFUSED",
    "AuthError",
    "Identity",
    "current_identity",
    "login_name",
    "require",
    "require_bulk_disconnect_confirmation",
]

#: Exit code of a command refused for the user's role (or an unknown user).
EXIT_REFUSED = 4


class AuthError(HesError):
    """The command line cannot say who its user is (bad token, unmapped login): an admin must fix it."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The head-end user acting, their role and how they were recognised (token, os-user, bootstrap)."""

    name: str
    role: str
    via: str

    @property
    def audit_name(self) -> str:
        return self.name if self.via != "bootstrap" else f"{self.name} (bootstrap admin)"


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def _identify(engine: Engine) -> Identity:
    token = os.environ.get("HES_TOKEN", "").strip()
    if token:
        user = find_by_token(engine, token)
        if user is None:
            raise AuthError("HES_TOKEN is not a valid head-end token (hes user token NAME issues one)")
        if user.disabled:
            raise AuthError(f"user {user.name!r} is disabled")
        return Identity(user.name, user.role, "token")
    login = login_name()
    user = find_by_os_user(engine, login)
    if user is not None:
        if user.disabled:
            raise AuthError(f"user {user.name!r} is disabled")
        return Identity(user.name, user.role, "os-user")
    if count_users(engine) == 0:
        return Identity(login, "admin", "bootstrap")
    raise AuthError(f"OS user {login!r} is not a head-end user (an admin adds it: hes user add NAME --role ROLE "
                    f"--os-user {login})")


def current_identity(engine: Engine | None = None) -> Identity:
    """The acting user; ``AuthError`` when there is none. Without ``engine``, the configured database is used."""
    if engine is not None:
        return _identify(engine)
    created = create_engine_for(load_settings().database_url)
    try:
        with storage_errors(created):
            upgrade(created)
        return _identify(created)
    finally:
        created.dispose()


def _audit(engine: Engine, who: str, what: str, result: str) -> None:
    with storage_errors(engine), session_factory(engine)() as session, session.begin():
        record_audit(session, who, what, result)


def _refuse(group: str, text: str) -> typer.Exit:
    print(f"hes {group}: refused: {text}", file=sys.stderr)
    return typer.Exit(EXIT_REFUSED)


def require(action: str, engine: Engine, target: str = "", *, group: str | None = None) -> Identity:
    """The acting user if their role allows ``action``; else one line on stderr, an audit row, exit 4."""
    group = group or action
    what = f"{action} {target}".strip()
    try:
        identity = _identify(engine)
    except AuthError as exc:
        _audit(engine, login_name(), what, f"REFUSED: {exc}")
        raise _refuse(group, str(exc)) from None
    if not allowed(identity.role, action):
        needed = required_role(action)
        text = f"user {identity.name} ({identity.role}) may not {action}; {needed} or above is needed"
        _audit(engine, identity.audit_name, what, f"REFUSED: {text}")
        raise _refuse(group, text)
    return identity


def require_bulk_disconnect_confirmation(identity: Identity, engine: Engine, count: int, confirmed: bool,
                                         *, target: str = "", group: str = "plan") -> None:
    """A plan that disconnects more than one meter runs only when its user confirmed it explicitly.

    Checks the role for ``bulk-disconnect`` too; refuses (stderr line, audit row, exit 4) unless
    ``confirmed``. One meter is not bulk: ``hes disconnect`` rules apply to it.
    """
    what = f"bulk-disconnect {count} meters {target}".strip()
    if not allowed(identity.role, "bulk-disconnect"):
        text = (f"user {identity.name} ({identity.role}) may not disconnect meters in bulk; "
                f"{required_role('bulk-disconnect')} or above is needed")
        _audit(engine, identity.audit_name, what, f"REFUSED: {text}")
        raise _refuse(group, text)
    if count > 1 and not confirmed:
        text = f"this disconnects {count} meters: confirm with --confirm-disconnect"
        _audit(engine, identity.audit_name, what, f"REFUSED: {text}")
        raise _refuse(group, text)
