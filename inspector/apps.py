from django.apps import AppConfig


class InspectorConfig(AppConfig):
    """The memory inspector: support staff's pages over the memory engine (no models of its own;
    its permissions are the memory app's, `memory.view_memories` and friends)."""

    name = "inspector"
    verbose_name = "Memory inspector"
