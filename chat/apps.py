from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Connects the login receiver; here, not at the top: it imports models, which need the app registry.
        from chat import signals  # noqa: F401
