from django.urls import path

from memory import views

app_name = "memory"
urlpatterns = [
    path("", views.inspector_home, name="inspector"),
    path("memories/<str:memory_id>/", views.memory_detail, name="memory"),
]
