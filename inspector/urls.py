"""The memory inspector's URLs, under /inspector/ (config/urls.py). The live feed's WebSocket
route is in config/routing.py.

User and session ids can hold any character, so they use the `key` converter
(inspector/converters.py); memory ids are ULIDs and dead-letter ids are stream ids.
"""

from django.urls import path, register_converter

from inspector import views
from inspector.converters import KeyConverter

register_converter(KeyConverter, "key")

app_name = "inspector"
urlpatterns = [
    path("", views.overview, name="inspector"),
    path("status/", views.status_page, name="status"),
    path("status.json", views.status_json, name="status_json"),
    path("users/", views.user_lookup, name="user_lookup"),
    path("users/<key:user_id>/", views.user_page, name="user"),
    path("users/<key:user_id>/export.json", views.export_user, name="export"),
    path("users/<key:user_id>/erase", views.erase_user, name="erase"),
    path("users/<key:user_id>/sandbox", views.sandbox, name="sandbox"),
    path("receipts/<str:receipt_id>/", views.erase_receipt, name="receipt"),
    path("sessions/<key:session_id>/", views.session_page, name="session"),
    path("memories/<str:memory_id>/", views.memory_page, name="memory"),
    path("memories/<str:memory_id>/edit", views.edit_memory, name="edit"),
    path("memories/<str:memory_id>/delete", views.delete_memory, name="delete"),
    path("memories/<str:memory_id>/undelete", views.undelete_memory, name="undelete"),
    path("memories/<str:memory_id>/restore-version", views.restore_version, name="restore_version"),
    path("memories/<str:memory_id>/ttl", views.set_ttl, name="set_ttl"),
    path("memories/<str:memory_id>/ttl/extend", views.extend_ttl, name="extend_ttl"),
    path("memories/<str:memory_id>/ttl/persist", views.persist_memory, name="persist"),
    path("memories/<str:memory_id>/pin", views.pin_memory, name="pin"),
    path("memories/<str:memory_id>/lock", views.lock_memory, name="lock"),
    path("dead-letters/<str:letter_id>/retry", views.retry_dead_letter, name="retry_dead_letter"),
    path("dead-letters/<str:letter_id>/discard", views.discard_dead_letter, name="discard_dead_letter"),
]
