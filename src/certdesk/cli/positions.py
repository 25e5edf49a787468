"""`certdesk position set|delete` and `certdesk role set`: the office edits positions, the roles
they carry and the permissions roles grant. Audited with before and after by the registry
service, which refuses deleting a position in use and leaving nobody with a kept permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from certdesk.cli.output import say

if TYPE_CHECKING:
    from certdesk.services.context import Context


def register(app: typer.Typer, position_app: typer.Typer, context: Callable[[], Context]) -> None:
    role_app = typer.Typer(
        help="Roles: the permissions a position's roles grant.", no_args_is_help=True
    )
    app.add_typer(role_app, name="role")

    @position_app.command("set")
    def position_set(
        code: str,
        name: Annotated[str, typer.Option(help="Display name")],
        role: Annotated[list[str], typer.Option(help="A role it carries (repeat)")],
    ) -> None:
        """Create a position, or rename it / change its roles (at holders' next request)."""
        from certdesk.services.registry import define_position

        define_position(context(), code, name, role)
        say(f"Position {code} saved.", f"岗位 {code} 已保存。")

    @position_app.command("delete")
    def position_delete(code: str) -> None:
        """Remove a position nobody holds."""
        from certdesk.services.registry import delete_position

        delete_position(context(), code)
        say(f"Position {code} deleted.", f"岗位 {code} 已删除。")

    @role_app.command("set")
    def role_set(
        code: str,
        name: Annotated[str, typer.Option(help="Display name")],
        permission: Annotated[list[str], typer.Option(help="A permission it grants (repeat)")],
    ) -> None:
        """Create a role, or change the permissions it grants."""
        from certdesk.services.registry import define_role

        define_role(context(), code, name, permission)
        say(f"Role {code} saved.", f"角色 {code} 已保存。")
