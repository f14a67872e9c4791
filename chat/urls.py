from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.session_list, name="home"),
    path("new", views.new_session, name="new"),
    path("<str:session_id>/", views.chat_page, name="session"),
    path("<str:session_id>/messages", views.message_log, name="messages"),
    path("<str:session_id>/rename", views.rename_session, name="rename"),
    path("<str:session_id>/delete", views.delete_session, name="delete"),
    path("me/memories/", views.my_memories, name="my_memories"),
    path("me/memories/<str:memory_id>/forget", views.forget_memory, name="forget_memory"),
    path("me/memories/<str:memory_id>/restore", views.restore_memory, name="restore_memory"),
]
