from django.contrib import admin
from django.urls import include, path, re_path

from api.compat import api as api_compat
from api.problems import unknown_path
from api.v1 import api as api_v1
from chat import views as chat_views
from core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("chat/", include("chat.urls")),
    path("inspector/", include("inspector.urls")),
    path("api/v1/", api_v1.urls),
    # Last of the api/ routes: any other path there is a 404 problem, not an HTML page.
    re_path(r"^api/(?P<path>.*)$", unknown_path),
    # agent-memory-client's paths (/v1/...) at the root, so its base_url is the server's address.
    path("", api_compat.urls),
    path("accounts/signup/", chat_views.signup, name="signup"),
    # Before django.contrib.auth's own logout view (same path and name): ours says "signed out".
    path("accounts/logout/", chat_views.log_out, name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
