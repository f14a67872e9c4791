"""A memory's page and its actions (edit, delete and undo, restore a version, TTL, pin, lock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from inspector.forms import EditMemoryForm, FlagForm, ReasonForm, RestoreVersionForm, TtlForm
from inspector.permissions import (
    can_change,
    change_required,
    is_htmx,
    staff_actor,
    staff_owner,
    view_required,
)
from inspector.presenters import MemoryView, duration_text, history_entries, memory_url
from inspector.views.common import feed_context, form_error, is_partial, memory_or_404, next_url
from inspector.views.users import deleted_context
from memory import services
from memory.selectors import memories_from_turns, memory_history
from memory.topics import visible_topics, with_internal_topics
from memory.types import (
    EngineError,
    InvalidInput,
    Memory,
    MemoryLocked,
    MemoryNotFound,
    MemoryType,
    VersionConflict,
)


def _memory_context(
    request: HttpRequest, memory: Memory, *, edit_form: EditMemoryForm | None = None
) -> dict[str, Any]:
    events = memory_history(memory_id=memory.id)
    initial = {
        "text": memory.text,
        "type": str(memory.type),
        # Internal markers (slot:…, said-by:…) are not the staff's to edit; saving keeps them.
        "topics": ", ".join(visible_topics(memory.topics)),
        "expected_version": memory.version,
    }
    # A fact links to the turn(s) it was learned from; a raw turn to the facts learned from it.
    related = memories_from_turns(
        user_id=memory.scope.user_id,
        turn_ids=memory.source,
        types=["message"]
        if memory.type != MemoryType.MESSAGE
        else [t for t in MemoryType if t != MemoryType.MESSAGE],
    )
    return {
        "memory": memory,
        "m": MemoryView(memory),
        "related": [MemoryView(r) for r in related if r.id != memory.id],
        "history": history_entries(events, current=memory),
        "edit_form": edit_form or EditMemoryForm(initial=initial),
        "ttl_form": TtlForm(initial={"unit": "hours"}),
        "extend_form": TtlForm(initial={"unit": "days"}),
        "can_change": can_change(request.user),
        "grace": duration_text(settings.SOFT_DELETE_GRACE_SECONDS),
    }


@view_required
@require_GET
def memory_page(request: HttpRequest, memory_id: str) -> HttpResponse:
    memory = memory_or_404(request, memory_id)
    if is_partial(request):
        return render(request, "inspector/_memory_panel.html", _memory_context(request, memory))
    context = {**_memory_context(request, memory), **feed_context(memory_id=memory.id)}
    return render(request, "inspector/memory.html", context)


def _answer(
    request: HttpRequest,
    *,
    memory_id: str,
    status: int = 200,
    edit_form: EditMemoryForm | None = None,
) -> HttpResponse:
    """The response to a memory action, after its outcome was queued as a message."""
    panel = request.POST.get("panel", "memory")
    if is_htmx(request):
        if panel == "deleted":
            memory = memory_or_404(request, memory_id)
            response = render(
                request, "inspector/_deleted.html", deleted_context(request, memory.scope.user_id)
            )
            # The user page's memory table listens for this and reloads itself.
            return trigger_client_event(response, "memories-changed")
        memory = memory_or_404(request, memory_id)
        context = _memory_context(request, memory, edit_form=edit_form)
        return render(request, "inspector/_memory_panel.html", context)
    if status >= 400 and panel == "memory":
        memory = memory_or_404(request, memory_id)
        context = {
            **_memory_context(request, memory, edit_form=edit_form),
            **feed_context(memory_id=memory.id),
        }
        return render(request, "inspector/memory.html", context, status=status)
    return redirect(next_url(request, default=memory_url(memory_id)))


def _act(
    request: HttpRequest,
    memory_id: str,
    form: Form,
    apply: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """Validate the form, run the service call, and answer with its outcome (or why it was refused)."""
    memory = memory_or_404(request, memory_id)
    if not form.is_valid():
        messages.error(request, form_error(form))
        return _answer(request, memory_id=memory.id, status=400)
    try:
        messages.success(request, apply(form.cleaned_data))
    except MemoryNotFound:
        if memory.deleted:
            messages.error(request, "This memory is deleted: undo the delete first.")
        else:
            messages.error(request, "This memory no longer exists (deleted or expired meanwhile).")
        return _answer(request, memory_id=memory.id, status=409)
    except (VersionConflict, MemoryLocked) as exc:
        messages.error(request, str(exc))
        return _answer(request, memory_id=memory.id, status=409)
    except EngineError as exc:
        messages.error(request, str(exc))
        return _answer(request, memory_id=memory.id, status=400)
    return _answer(request, memory_id=memory.id)


# The edit form's errors drawn beside their field (templates/inspector/_memory_panel.html).
EDIT_ERRORS_IN_FORM = frozenset({"text", "topics", "__all__"})


@change_required
@require_POST
def edit_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    memory = memory_or_404(request, memory_id)
    form = EditMemoryForm(request.POST)
    if not form.is_valid():
        # The form shows text, topics and form-wide errors beside their fields: a flash message
        # would say them a second time. Only the others (reason, version) are flashed.
        unseen = {k: v for k, v in form.errors.items() if k not in EDIT_ERRORS_IN_FORM}
        if unseen:
            messages.error(request, " ".join(" ".join(str(e) for e in errors) for errors in unseen.values()))
        return _answer(request, memory_id=memory.id, status=400, edit_form=form)
    data = form.cleaned_data
    topics = with_internal_topics(data["topics"], current=memory.topics)
    # Send only what changed: unchanged text must not be re-embedded or shown as an edit.
    changes: dict[str, Any] = {}
    if data["text"] != memory.text:
        changes["text"] = data["text"]
    if data["type"] != str(memory.type):
        changes["type"] = data["type"]
    if topics != with_internal_topics(memory.topics, current=memory.topics):
        changes["topics"] = topics
    if not changes:
        messages.info(request, "Nothing changed: the form matches the memory as it is.")
        return _answer(request, memory_id=memory.id)
    try:
        updated = services.update_memory(
            memory_id=memory.id,
            owner=staff_owner(request.user, change=True),
            actor=staff_actor(request.user),
            reason=data["reason"],
            expected_version=data["expected_version"],
            **changes,
        )
    except VersionConflict:
        current = memory_or_404(request, memory.id)
        # Keep what the staff member typed, now based on the current version: saving again is a
        # deliberate overwrite after looking at what changed.
        resubmit = request.POST.copy()
        resubmit["expected_version"] = str(current.version)
        messages.error(
            request,
            f"Not saved: this memory changed while you were editing (it is now version {current.version}). "
            "Your text is still in the form; check the current text and history, then save again to "
            "overwrite.",
        )
        return _answer(request, memory_id=memory.id, status=409, edit_form=EditMemoryForm(resubmit))
    except MemoryNotFound:
        messages.error(request, "This memory is deleted or expired; it cannot be edited.")
        return _answer(request, memory_id=memory.id, status=409)
    except EngineError as exc:
        form.add_error(None, str(exc))  # shown once, at the top of the form
        return _answer(request, memory_id=memory.id, status=400, edit_form=form)
    messages.success(request, f"Saved as version {updated.version}.")
    return _answer(request, memory_id=memory.id)


@change_required
@require_POST
def delete_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        services.delete_memory(memory_id=memory_id, owner=owner, actor=actor, reason=data["reason"])
        grace = duration_text(settings.SOFT_DELETE_GRACE_SECONDS)
        return f"Deleted. You can undo this for {grace}."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def undelete_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)
    memory = memory_or_404(request, memory_id)
    if not memory.deleted:
        messages.info(request, "This memory is not deleted.")
        return _answer(request, memory_id=memory.id)

    def apply(data: dict[str, Any]) -> str:
        try:
            services.restore_memory(
                memory_id=memory_id, owner=owner, actor=actor, reason=data["reason"] or "undo delete"
            )
        except MemoryNotFound as exc:
            raise InvalidInput("This memory can no longer be restored: its grace period is over.") from exc
        return "Restored: the memory is back in search and prompts."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def restore_version(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        restored = services.restore_version(
            memory_id=memory_id,
            owner=owner,
            version=data["version"],
            actor=actor,
            expected_version=data.get("expected_version"),
        )
        return f"Restored the text of version {data['version']} as version {restored.version}."

    return _act(request, memory_id, RestoreVersionForm(request.POST), apply)


@change_required
@require_POST
def set_ttl(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        services.set_ttl(
            memory_id=memory_id, owner=owner, ttl_seconds=data["seconds"], actor=actor, reason=data["reason"]
        )
        return f"The memory now expires in {duration_text(data['seconds'])}."

    return _act(request, memory_id, TtlForm(request.POST), apply)


@change_required
@require_POST
def extend_ttl(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        updated = services.extend_ttl(
            memory_id=memory_id, owner=owner, seconds=data["seconds"], actor=actor, reason=data["reason"]
        )
        return (
            f"Extended by {duration_text(data['seconds'])}; expires in {duration_text(updated.ttl_seconds)}."
        )

    return _act(request, memory_id, TtlForm(request.POST), apply)


@change_required
@require_POST
def persist_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        services.set_ttl(
            memory_id=memory_id, owner=owner, ttl_seconds=None, actor=actor, reason=data["reason"]
        )
        return "The memory no longer expires."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def pin_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        services.set_pinned(
            memory_id=memory_id, owner=owner, pinned=data["value"], actor=actor, reason=data["reason"]
        )
        return "Pinned: it is always in the prompt." if data["value"] else "Unpinned."

    return _act(request, memory_id, FlagForm(request.POST), apply)


@change_required
@require_POST
def lock_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor, owner = staff_actor(request.user), staff_owner(request.user, change=True)

    def apply(data: dict[str, Any]) -> str:
        reason = data["reason"] or ("corrected by support" if data["value"] else "")
        services.set_locked(
            memory_id=memory_id, owner=owner, locked=data["value"], actor=actor, reason=reason
        )
        if data["value"]:
            return "Locked: the assistant and the extractor may no longer change or delete it."
        return "Unlocked: the assistant and the extractor may update it again."

    return _act(request, memory_id, FlagForm(request.POST), apply)
