"""WebSocket routes of every app."""

from django.urls import URLPattern, URLResolver, path

from chat.consumers import ChatConsumer
from memory.inspector.consumers import InspectorFeedConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/chat/<str:session_id>/", ChatConsumer.as_asgi()),
    path("ws/inspector/feed/", InspectorFeedConsumer.as_asgi()),
]
