from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.health import health_report
from core.llm import get_llm


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html", {"llm_mode": get_llm().mode})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=503 if report["status"] == "error" else 200)
