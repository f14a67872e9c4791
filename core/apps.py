from django.apps import AppConfig
from django.core import checks

from core.redis_check import redis_system_check


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Engram core"

    def ready(self) -> None:
        checks.register(redis_system_check, "redis")
