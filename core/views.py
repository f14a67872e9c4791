from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from core.health import liveness
from core.llm import get_llm


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html", {"llm_mode": get_llm().mode})


@never_cache
@require_safe  # GET and HEAD: load balancers probe with either
def healthz(request: HttpRequest) -> JsonResponse:
    """Public liveness: nothing but ok/degraded (the details are on the staff status page)."""
    status = liveness()
    return JsonResponse({"status": status}, status=200 if status == "ok" else 503)
