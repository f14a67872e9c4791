from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@staff_member_required
def inspector_home(request: HttpRequest) -> HttpResponse:
    return render(request, "memory/inspector_placeholder.html")


@staff_member_required
def memory_detail(request: HttpRequest, memory_id: str) -> HttpResponse:
    return render(request, "memory/inspector_placeholder.html")
