"""Dead letters: turns whose extraction failed too often, parked with the error so the session
moves on; staff retry (the turns are queued again) or discard them from the inspector."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from core.redis_client import get_redis
from memory import keys
from memory.events import append_to_stream
from memory.extraction import queue
from memory.lease import fenced
from memory.types import SYSTEM, Actor, Lease, LeaseLost, MemoryNotFound


def dead_letter(
    *,
    session_id: str,
    user_id: str,
    turns: Sequence[queue.QueuedTurn],
    error: str,
    entries: Sequence[queue.StreamEntry],
    lease: Lease | None = None,
) -> str:
    """Park the turns with the error, move past them, acknowledge: the session is not stuck.

    The letter goes first, then the session's own commit (one slot, fenced), then the
    acknowledgement and the counter (other slots on a cluster). A worker killed in between leaves
    the turns parked and still pending: the next attempt may park them once more (a duplicate
    letter, never a lost turn). A job taken over between its lock check and its commit takes its
    letter back (LeaseLost)."""
    from_seq = min((t.seq for t in turns), default=queue.cursor(session_id) + 1)
    to_seq = max((t.seq for t in turns), default=from_seq - 1)
    client = get_redis()
    if lease is not None and client.get(lease.key) != lease.token.encode():
        raise LeaseLost("this job's lock was taken over (erase, identity move or expiry); nothing parked")
    letter_id = client.xadd(
        keys.dead_letter_stream(),
        {
            "session_id": session_id,
            "user_id": user_id,
            "error": error[:2000],
            "failed_at": repr(time.time()),
            "turns": json.dumps([json.loads(t.as_json()) for t in turns]),
        },
    )
    if to_seq >= from_seq:
        try:
            with fenced(lease) as pipe:
                queue.commit_on(
                    pipe, session_id=session_id, to_seq=to_seq, from_seq=from_seq, entries=entries
                )
        except LeaseLost:
            # Taken over after the check above: an erase may have scrubbed the letters before this
            # one was written, so it must not stay. The turns are still the session's, pending.
            client.xdel(keys.dead_letter_stream(), letter_id)
            raise
    queue.ack(entries, session_id=session_id)
    queue.bump("dead_letters")
    return f"{from_seq}-{to_seq}"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    session_id: str
    user_id: str
    error: str
    failed_at: float
    turns: list[queue.QueuedTurn]


def dead_letters(*, limit: int = 100) -> list[DeadLetter]:
    letters = []
    for entry_id, fields in get_redis().xrevrange(keys.dead_letter_stream(), count=limit):
        letters.append(
            DeadLetter(
                id=entry_id.decode(),
                session_id=fields[b"session_id"].decode(),
                user_id=fields[b"user_id"].decode(),
                error=fields[b"error"].decode(),
                failed_at=float(fields[b"failed_at"]),
                turns=[queue.QueuedTurn.from_json(json.dumps(t)) for t in json.loads(fields[b"turns"])],
            )
        )
    return letters


def _audit(event: str, letter: DeadLetter, actor: Actor) -> None:
    """Retrying or discarding parked turns is a staff decision: keep it in the audit stream."""
    payload = {
        "event": event,
        "memory_id": "",
        "user_id": letter.user_id,
        "version": 0,
        "actor": actor.as_dict(),
        "at": time.time(),
        "old": None,
        "new": None,
        "reason": "",
        "details": {"dead_letter": letter.id, "session_id": letter.session_id, "turns": len(letter.turns)},
    }
    with get_redis().pipeline(transaction=True) as pipe:
        append_to_stream(pipe, payload=json.dumps(payload), user_id=letter.user_id, event=event)
        pipe.execute()


def _letter(letter_id: str) -> DeadLetter:
    letter = next((d for d in dead_letters(limit=10_000) if d.id == letter_id), None)
    if letter is None:
        raise MemoryNotFound(f"no dead letter {letter_id}")
    return letter


def retry_dead_letter(letter_id: str, *, actor: Actor = SYSTEM) -> int:
    """Queue the letter's turns again (as new turns of the session) and remove the letter."""
    letter = _letter(letter_id)
    for turn in letter.turns:
        queue.enqueue_turn(
            user_id=turn.user_id,
            session_id=turn.session_id,
            turn_id=turn.turn_id,
            messages=turn.messages,
            agent_id=turn.agent_id,
            namespace=turn.namespace,
            strategy=turn.strategy,
        )
    get_redis().xdel(keys.dead_letter_stream(), letter_id)
    _audit("dead_letter_retried", letter, actor)
    return len(letter.turns)


def discard_dead_letter(letter_id: str, *, actor: Actor = SYSTEM) -> bool:
    try:
        letter = _letter(letter_id)
    except MemoryNotFound:
        return False
    removed = bool(get_redis().xdel(keys.dead_letter_stream(), letter_id))
    if removed:
        _audit("dead_letter_discarded", letter, actor)
    return removed
