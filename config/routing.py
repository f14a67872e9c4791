"""WebSocket routes of every app."""

from django.urls import URLPattern, URLResolver, path, re_path

from chat.consumers import ChatConsumer
from chat.demo_consumer import DemoConsumer
from core.websockets import refuse_unknown_path
from inspector.consumers import InspectorFeedConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/chat/<str:session_id>/", ChatConsumer.as_asgi()),
    path("ws/chat/<str:session_id>/demo/", DemoConsumer.as_asgi()),
    path("ws/inspector/feed/", InspectorFeedConsumer.as_asgi()),
    # Last: any other path is closed with 4404 instead of an exception in the router.
    re_path(r"", refuse_unknown_path),
]
