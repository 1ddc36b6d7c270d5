"""`hes user add | list | token`: head-end users, their roles and the OS logins or tokens they act by."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.auth import require
from cli.registry import open_registry, run_or_exit
from hes.events.users import ROLES, UserInfo, add_user, issue_token, list_users

__all__ = ["add", "app", "list_command", "token"]

app = typer.Typer(
    name="user",
    help="Head-end users and their roles (viewer, operator, technician, admin).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The head-end user's name (as the audit trail shows it).")],
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")],
    os_user: Annotated[
        str | None, typer.Option("--os-user", help="The OS login that acts as this user (default: NAME).")
    ] = None,
    no_os_user: Annotated[
        bool, typer.Option("--no-os-user", help="Map no OS login: the user acts only with a token.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the user as JSON.")] = False,
) -> None:
    """Add a user (admins only; while there is no user, the OS user acts as admin and must add an admin first)."""
    registry = run_or_exit("user", open_registry)
    identity = run_or_exit("user", lambda: require("user-admin", registry.engine, f"user add {name}", group="user"))
    login = None if no_os_user else (os_user or name)
    info = run_or_exit("user", lambda: add_user(registry.engine, name, role, os_user=login,
                                                 created_by=identity.audit_name))
    if as_json:
        print(json.dumps(info.to_json()))
    else:
        print(f"user {info.name} added: role {info.role}" + (f", OS user {info.os_user}" if info.os_user else ""))


def _line(user: UserInfo) -> str:
    return (f"{user.name:<20} {user.role:<10} {user.os_user or '-':<16} {'yes' if user.has_token else 'no':<5} "
            f"{user.created_at:%Y-%m-%dT%H:%M:%SZ} {user.created_by}" + (" (disabled)" if user.disabled else ""))


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List users with their role, OS login and whether they hold a token (viewers and above)."""
    registry = run_or_exit("user", open_registry)
    run_or_exit("user", lambda: require("list", registry.engine, "user list", group="user"))
    users = run_or_exit("user", lambda: list_users(registry.engine))
    if as_json:
        print(json.dumps([u.to_json() for u in users]))
        return
    if not users:
        print("no users: the OS user acts as admin until the first one is added")
        return
    print(f"{'name':<20} {'role':<10} {'os user':<16} {'token':<5} created")
    for user in users:
        print(_line(user))


@app.command("token")
def token(name: Annotated[str, typer.Argument(help="The user to issue a token to.")]) -> None:
    """Issue a token for NAME (admins only), replacing any earlier one; it is printed once, use it as HES_TOKEN."""
    registry = run_or_exit("user", open_registry)
    identity = run_or_exit("user", lambda: require("user-admin", registry.engine, f"user token {name}",
                                                   group="user"))
    print(run_or_exit("user", lambda: issue_token(registry.engine, name, issued_by=identity.audit_name)))
