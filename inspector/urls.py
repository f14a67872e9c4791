"""The memory inspector's URLs, under /inspector/ (config/urls.py). The live feed's WebSocket
route is in config/routing.py.

User and session ids can hold any character, so they use the `key` converter
(inspector/converters.py); memory ids are ULIDs and dead-letter ids are stream ids.
"""

from django.urls import path, register_converter

from inspector.converters import KeyConverter
from inspector.views import keys, letters, memories, overview, sessions, status, users

register_converter(KeyConverter, "key")

app_name = "inspector"
urlpatterns = [
    path("", overview.overview, name="inspector"),
    path("status/", status.status_page, name="status"),
    path("status.json", status.status_json, name="status_json"),
    path("users/", overview.user_lookup, name="user_lookup"),
    path("users/<key:user_id>/", users.user_page, name="user"),
    path("users/<key:user_id>/export.json", users.export_user, name="export"),
    path("users/<key:user_id>/erase", users.erase_user, name="erase"),
    path("users/<key:user_id>/sandbox", sessions.sandbox, name="sandbox"),
    path("receipts/<str:receipt_id>/", users.erase_receipt, name="receipt"),
    path("sessions/<key:session_id>/", sessions.session_page, name="session"),
    path("memories/<str:memory_id>/", memories.memory_page, name="memory"),
    path("memories/<str:memory_id>/edit", memories.edit_memory, name="edit"),
    path("memories/<str:memory_id>/delete", memories.delete_memory, name="delete"),
    path("memories/<str:memory_id>/undelete", memories.undelete_memory, name="undelete"),
    path("memories/<str:memory_id>/restore-version", memories.restore_version, name="restore_version"),
    path("memories/<str:memory_id>/ttl", memories.set_ttl, name="set_ttl"),
    path("memories/<str:memory_id>/ttl/extend", memories.extend_ttl, name="extend_ttl"),
    path("memories/<str:memory_id>/ttl/persist", memories.persist_memory, name="persist"),
    path("memories/<str:memory_id>/pin", memories.pin_memory, name="pin"),
    path("memories/<str:memory_id>/lock", memories.lock_memory, name="lock"),
    path("api-keys/", keys.api_keys, name="api_keys"),
    path("api-keys/create", keys.create_key, name="create_api_key"),
    path("api-keys/<int:key_id>/revoke", keys.revoke_key, name="revoke_api_key"),
    path("dead-letters/<str:letter_id>/retry", letters.retry_dead_letter, name="retry_dead_letter"),
    path("dead-letters/<str:letter_id>/discard", letters.discard_dead_letter, name="discard_dead_letter"),
]
