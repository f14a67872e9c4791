"""The system status page and its JSON: what the public /healthz no longer shows."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from inspector import selectors as inspector_selectors
from inspector.permissions import view_required


@view_required
@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    """What the public /healthz no longer shows: Redis, its modules, the index, workers, queue, models."""
    report = inspector_selectors.status_report()
    return render(request, "inspector/status.html", {"report": report}, status=_status_code(report))


@view_required
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    report = inspector_selectors.status_report()
    return JsonResponse(report, status=_status_code(report))


def _status_code(report: dict[str, Any]) -> int:
    return 503 if report["status"] == "error" else 200
