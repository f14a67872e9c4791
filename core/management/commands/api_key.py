"""`python manage.py api_key create|list|revoke`: API keys for other agents (api/, the MCP server).

The raw key is printed once, by `create`, and never again: only its hash is stored.

The command runs as the operator (whoever can run manage.py already holds the database and the
settings), so it is unrestricted: it creates staff keys too, where the inspector asks for the change
permission besides `core.manage_api_keys`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.api_keys import ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from core.models import ApiKey


class Command(BaseCommand):
    help = "Create, list or revoke the API keys other agents use to reach Engram's memory."
    # Keys live in the database only; a Redis without its search module must not stop key admin.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="a new key (printed once)")
        create.add_argument("name", help="a unique label, e.g. the app's name")
        create.add_argument(
            "--role",
            choices=ApiKey.Role.values,
            default=ApiKey.Role.APP,
            help="app (default) or staff: every user's memories, pins, locks and erase",
        )
        create.add_argument("--agent-id", default="engram", help="the agent whose memories the key reaches")
        create.add_argument(
            "--namespace",
            action="append",
            dest="namespaces",
            default=None,
            help="a namespace the key may use (repeat for more; an app key needs one). Default: default",
        )
        create.add_argument("--rate-limit", type=int, default=600, help="requests per minute (default 600)")
        actions.add_parser("list", help="every key, without its secret")
        revoke = actions.add_parser("revoke", help="revoke a key for good")
        revoke.add_argument("key", help="the key's id or name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list()
        else:
            self._revoke(options["key"])

    def _create(self, options: dict[str, Any]) -> None:
        try:
            api_key, raw_key = create_api_key(
                name=options["name"],
                role=options["role"],
                agent_id=options["agent_id"],
                namespaces=options["namespaces"] or ["default"],
                rate_limit_per_minute=options["rate_limit"],
            )
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created {api_key.role} key {api_key.name!r} (id {api_key.pk}).")
        self.stdout.write("The key is shown only now; store it somewhere safe:")
        self.stdout.write(raw_key)

    def _list(self) -> None:
        keys = list_api_keys()
        if not keys:
            self.stdout.write("No API keys.")
            return
        for api_key in keys:
            state = f"revoked {api_key.revoked_at:%Y-%m-%d %H:%M}" if api_key.revoked_at else "active"
            used = f"{api_key.last_used_at:%Y-%m-%d %H:%M}" if api_key.last_used_at else "never"
            self.stdout.write(
                f"{api_key.pk}\t{api_key.name}\t{api_key.prefix}…\t{api_key.role}\tagent={api_key.agent_id}\t"
                f"namespaces={','.join(api_key.namespaces)}\t{api_key.rate_limit_per_minute}/min\t"
                f"last used {used}\t{state}"
            )

    def _revoke(self, key: str) -> None:
        found = ApiKey.objects.filter(pk=int(key)) if key.isdigit() else ApiKey.objects.filter(name=key)
        api_key = found.first()
        if api_key is None:
            raise CommandError(f"no API key {key!r}")
        revoke_api_key(key_id=api_key.pk)
        self.stdout.write(f"Revoked key {api_key.name!r} (id {api_key.pk}).")
