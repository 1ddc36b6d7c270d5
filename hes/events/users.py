"""Head-end users and roles: who may do what, users in the database, tokens kept only as hashes.

Roles, from the least trusted: viewer (reads, lists), operator (clock sync and the viewer's
rights), technician (disconnect, reconnect, bulk relay plans with confirmation), admin (users and
everything else). ``ACTIONS`` says the least role each action needs; ``allowed(role, action)``
is the one rule. A token is 32 random bytes shown once when issued; the database keeps its
SHA-256, so a stolen database gives no token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from hes.db.engine import session_factory, storage_errors
from hes.db.models import utcnow
from hes.db.orders import record_audit
from hes.errors import HesError
from hes.events.models import ROLES, User

__all__ = [
    "ACTIONS",
    "ROLES",
    "UserError",
    "UserInfo",
    "add_user",
    "allowed",
    "count_users",
    "find_by_os_user",
    "find_by_token",
    "issue_token",
    "list_users",
    "required_role",
    "role_rank",
]

#: The least role each action needs.
ACTIONS: dict[str, str] = {
    "read": "viewer",
    "list": "viewer",
    "clock-sync": "operator",
    "disconnect": "technician",
    "reconnect": "technician",
    "bulk-disconnect": "technician",
    "user-admin": "admin",
    # Plans and N2PLoad passes put work on the whole fleet; registry changes and key exports touch secrets.
    "plan": "operator",
    "cim": "operator",
    "export": "operator",
    "import": "operator",
    "registry": "admin",
    "field-keys": "admin",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UserError(HesError):
    """A user operation asked for wrongly (bad name or role, duplicate, unknown user): fix the call."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as listed (never the token or its hash)."""

    name: str
    role: str
    os_user: str | None
    has_token: bool
    created_at: datetime
    created_by: str
    disabled: bool

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "os_user": self.os_user, "has_token": self.has_token,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by, "disabled": self.disabled}


def role_rank(role: str) -> int:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return ROLES.index(role)


def required_role(action: str) -> str:
    found = ACTIONS.get(action)
    if found is None:
        raise UserError(f"unknown action {action!r} (one of {', '.join(sorted(ACTIONS))})")
    return found


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action``."""
    return role_rank(role) >= role_rank(required_role(action))


def _info(user: User) -> UserInfo:
    return UserInfo(user.name, user.role, user.os_user, user.token_hash is not None, user.created_at,
                    user.created_by, user.disabled)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def count_users(engine: Engine) -> int:
    with storage_errors(engine), session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def add_user(engine: Engine, name: str, role: str, *, os_user: str | None, created_by: str) -> UserInfo:
    """A new user (audited); the first user must be an admin, so that someone can manage the others."""
    if not _NAME.match(name):
        raise UserError(f"user name {name!r}: 1-64 letters, digits or . _ @ -, starting with a letter or digit")
    if os_user is not None and not _NAME.match(os_user):
        raise UserError(f"OS user {os_user!r}: 1-64 letters, digits or . _ @ -")
    role_rank(role)
    with storage_errors(engine), session_factory(engine)() as session, session.begin():
        existing = int(session.scalar(select(func.count()).select_from(User)) or 0)
        if existing == 0 and role != "admin":
            raise UserError(f"the first user must be an admin (asked: {role}); add an admin first")
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise UserError(f"user {name!r} already exists")
        if os_user is not None:
            holder = session.scalar(select(User).where(User.os_user == os_user))
            if holder is not None:
                raise UserError(f"OS user {os_user!r} is already mapped to user {holder.name!r}")
        user = User(name=name, role=role, os_user=os_user, created_at=utcnow(), created_by=created_by,
                    disabled=False)
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            raise UserError(f"user {name!r} or OS user {os_user!r} already exists") from None
        record_audit(session, created_by, f"user add {name} --role {role}"
                     + (f" --os-user {os_user}" if os_user else ""), "EXE")
        return _info(user)


def list_users(engine: Engine) -> list[UserInfo]:
    with storage_errors(engine), session_factory(engine)() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.name))]


def find_by_os_user(engine: Engine, login: str) -> UserInfo | None:
    with storage_errors(engine), session_factory(engine)() as session:
        user = session.scalar(select(User).where(User.os_user == login))
        return None if user is None else _info(user)


def find_by_token(engine: Engine, token: str) -> UserInfo | None:
    with storage_errors(engine), session_factory(engine)() as session:
        user = session.scalar(select(User).where(User.token_hash == _token_hash(token)))
        return None if user is None else _info(user)


def issue_token(engine: Engine, name: str, *, issued_by: str) -> str:
    """A new token for ``name`` (replacing any earlier one); returned once, stored as a hash."""
    token = secrets.token_urlsafe(32)
    with storage_errors(engine), session_factory(engine)() as session, session.begin():
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise UserError(f"no user {name!r}")
        user.token_hash = _token_hash(token)
        record_audit(session, issued_by, f"user token {name}", "EXE: token issued")
    return token
