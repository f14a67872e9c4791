from django.apps import AppConfig
from django.core import checks

from core.startup import STARTUP
from memory.checks import key_layout_check


class MemoryConfig(AppConfig):
    name = "memory"
    verbose_name = "Memory"

    def ready(self) -> None:
        checks.register(key_layout_check, STARTUP, deploy=True)
