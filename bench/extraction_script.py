"""The extraction bench's workload and the scripted model that answers the worker's calls.

Every turn carries one fact, looked up by the turn's text when the worker's extraction call
arrives, so the "model" answers instantly and deterministically. Facts of one user come from
sentence templates chosen to be far apart for the local embedder: the decision step shows the
model every stored memory within EXTRACTION_RELATED_DISTANCE of a candidate, and near facts would
turn "distinct" turns into decision calls. Contradictions are the opposite: a seeded memory with
one slot re-drawn, close enough (checked with the real embedder) that the decision call happens.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.corpus import TEMPLATES, WORDS, Corpus, Draft, Template
from devtools.llm_server import Reply
from memory.extraction.prompts import DECISION_PROMPT, STRATEGY_PROMPTS

# The system prompt of the latency probe: the scripted model answers it with no memories.
PING_PROMPT = "bench: latency probe"
# Two templates whose samples are more similar than this never go to the same user.
TEMPLATE_SIMILARITY_LIMIT = 0.40
# A contradiction must be at least this similar to the memory it replaces (cosine), so that
# the decision step sees the old memory (EXTRACTION_RELATED_DISTANCE 0.55 = similarity 0.45).
CONTRADICTION_MIN_SIMILARITY = 0.55
CONTRADICTION_ATTEMPTS = 8
# A transcript line: "#3 [2026-12-01 10:00 UTC] user: text" (the number is the line's source id).
_USER_LINE = re.compile(r"^#(\d+) \[[^\]]*\] user: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class FactSpec:
    """The memory the scripted model extracts from one turn."""

    text: str
    type: str = "semantic"
    topics: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    replaces: str = ""  # the text of the stored memory this fact contradicts, "" for new information

    def as_memory(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "type": self.type,
            "topics": list(self.topics),
            "entities": list(self.entities),
            "event_date": None,
        }


@dataclass(frozen=True)
class PlannedTurn:
    user_id: str
    session_id: str
    text: str  # the user's message; unique, it is how the scripted model finds the fact
    fact: FactSpec | None  # None for the rules extractor's turns (the rules decide)


@dataclass
class Workload:
    turns: list[PlannedTurn]  # in enqueue order
    seeds: list[tuple[str, FactSpec]] = field(default_factory=list)  # (user, memory) stored beforehand
    # user -> memory texts that must exist once every turn is applied
    expected: dict[str, set[str]] = field(default_factory=dict)
    # user -> memory texts that must be gone (replaced by a contradiction)
    replaced: dict[str, set[str]] = field(default_factory=dict)

    @property
    def sessions(self) -> list[str]:
        return list(dict.fromkeys(t.session_id for t in self.turns))

    @property
    def contradictions(self) -> int:
        return sum(1 for t in self.turns if t.fact and t.fact.replaces)


def _fact(draft: Draft) -> FactSpec:
    fact = draft.fact()
    return FactSpec(text=fact.text, type=fact.type, topics=fact.topics, entities=fact.entities)


class FactMaker:
    """Draws facts for users; needs the embedder once to learn which templates sit close together."""

    def __init__(self, seed: int) -> None:
        from core.embeddings import get_embedder

        self.corpus = Corpus(seed)
        self.rng = random.Random(seed)
        self.embedder = get_embedder()
        self.close = self._close_templates()

    def _close_templates(self, samples: int = 3) -> set[tuple[int, int]]:
        """Template pairs whose samples come closer than TEMPLATE_SIMILARITY_LIMIT."""
        texts, owner = [], []
        for index, template in enumerate(TEMPLATES):
            for _ in range(samples):
                texts.append(self._draft(template).fact().text)
                owner.append(index)
        vectors = np.asarray(self.embedder.embed(texts))
        similarity = vectors @ vectors.T
        close: set[tuple[int, int]] = set()
        for a, b in zip(*np.nonzero(similarity > TEMPLATE_SIMILARITY_LIMIT), strict=True):
            if owner[a] != owner[b]:
                close.add((owner[a], owner[b]))
        return close

    def _draft(self, template: Template) -> Draft:
        values = {slot: self.rng.choice(WORDS[slot.rstrip("0123456789")]) for slot in _slots(template)}
        return Draft(template, tuple(values.items()))

    def templates_for_user(self, count: int) -> list[Template]:
        """`count` templates, pairwise far apart (falls back to any unused one if it must)."""
        order = self.rng.sample(range(len(TEMPLATES)), k=len(TEMPLATES))
        chosen: list[int] = []
        for index in order:
            if all((index, other) not in self.close for other in chosen):
                chosen.append(index)
            if len(chosen) == count:
                break
        chosen += [i for i in order if i not in chosen][: count - len(chosen)]
        return [TEMPLATES[i] for i in chosen]

    def facts(self, templates: list[Template]) -> list[FactSpec]:
        return [_fact(self._draft(t)) for t in templates]

    def contradictions(self, seeds: list[Draft]) -> list[FactSpec]:
        """For each seed, a variant with one slot re-drawn that the embedder still finds close."""
        found: dict[int, FactSpec] = {}
        pending = list(range(len(seeds)))
        for _ in range(CONTRADICTION_ATTEMPTS):
            if not pending:
                break
            variants = {i: self.corpus.vary(seeds[i], changes=1) for i in pending}
            texts = [t for i in pending for t in (seeds[i].fact().text, variants[i].fact().text)]
            vectors = np.asarray(self.embedder.embed(texts))
            for n, i in enumerate(pending):
                old, new = vectors[2 * n], vectors[2 * n + 1]
                if texts[2 * n] != texts[2 * n + 1] and float(old @ new) >= CONTRADICTION_MIN_SIMILARITY:
                    found[i] = _fact(variants[i])
            pending = [i for i in pending if i not in found]
        # Never close enough: the variant is new information (an ADD), and the seed stays.
        unmatched = {i: _fact(self.corpus.vary(seeds[i], changes=1)) for i in pending}
        return [
            unmatched[i] if i in unmatched else replace(found[i], replaces=seeds[i].fact().text)
            for i in range(len(seeds))
        ]

    def seed_drafts(self, templates: list[Template]) -> list[Draft]:
        return [self._draft(t) for t in templates]


def _slots(template: Template) -> list[str]:
    return re.findall(r"{(\w+)}", template.text)


def llm_workload(
    maker: FactMaker, *, run: str, turns: int, sessions: int, contradict_share: float = 0.0
) -> Workload:
    """`turns` turns over `sessions` sessions (one user each), enqueued round robin.

    With `contradict_share`, that share of each user's turns contradicts a memory seeded before
    the run; the other turns bring distinct new facts.
    """
    per_session = _split(turns, sessions)
    planned: dict[str, list[PlannedTurn]] = {}
    workload = Workload(turns=[])
    for s, count in enumerate(per_session):
        user, session = f"{run}-user-{s:04d}", f"{run}-session-{s:04d}"
        n_contradict = round(count * contradict_share)
        templates = maker.templates_for_user(count)
        seeds = maker.seed_drafts(templates[:n_contradict])
        facts = maker.contradictions(seeds) + maker.facts(templates[n_contradict:])
        maker.rng.shuffle(facts)
        workload.seeds += [(user, _fact(d)) for d in seeds]
        replaced = {f.replaces for f in facts if f.replaces}
        workload.expected[user] = {f.text for f in facts} | ({_fact(d).text for d in seeds} - replaced)
        workload.replaced[user] = replaced - workload.expected[user]
        planned[session] = [
            PlannedTurn(user, session, f"Note {run}-{s}-{n}: {fact.text}", fact)
            for n, fact in enumerate(facts)
        ]
    workload.turns = _round_robin(planned)
    return workload


# One first-person statement per turn that the offline rules turn into exactly one candidate.
RULE_TEMPLATES: tuple[str, ...] = (
    "I like {food}.",
    "I really enjoy {hobby}.",
    "I have a {pet} called {petname}.",
    "I live in {city}.",
    "I work as a {job}.",
    "I work at {company}.",
    "I hate {food}.",
    "I prefer {drink}.",
    "I went to a {event} in {city} yesterday.",
    "My name is {name}.",
)


def rules_workload(rng: random.Random, *, run: str, turns: int, sessions: int) -> Workload:
    planned: dict[str, list[PlannedTurn]] = {}
    for s, count in enumerate(_split(turns, sessions)):
        user, session = f"{run}-user-{s:04d}", f"{run}-session-{s:04d}"
        templates = rng.sample(RULE_TEMPLATES, k=min(count, len(RULE_TEMPLATES)))
        templates += [rng.choice(RULE_TEMPLATES) for _ in range(count - len(templates))]
        planned[session] = [PlannedTurn(user, session, _fill(rng, template), None) for template in templates]
    return Workload(turns=_round_robin(planned))


def _fill(rng: random.Random, template: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: rng.choice(WORDS[m.group(1)]), template)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _round_robin(planned: dict[str, list[PlannedTurn]]) -> list[PlannedTurn]:
    """Interleave sessions, as concurrent conversations would arrive."""
    out: list[PlannedTurn] = []
    longest = max((len(turns) for turns in planned.values()), default=0)
    for n in range(longest):
        out += [turns[n] for turns in planned.values() if n < len(turns)]
    return out


class ScriptedModel:
    """Answers the worker's extraction and decision calls from the planned turns. Thread-safe."""

    def __init__(self) -> None:
        self._by_turn: dict[str, FactSpec] = {}
        # Two users may draw the same fact text: keep every spec, the decision picks by what it is shown.
        self._by_fact: dict[str, list[FactSpec]] = {}
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def register(self, workload: Workload) -> None:
        with self._lock:
            for turn in workload.turns:
                if turn.fact is not None:
                    self._by_turn[turn.text] = turn.fact
                    self._by_fact.setdefault(turn.fact.text, []).append(turn.fact)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        system = messages[0].get("content", "") if messages else ""
        user = messages[-1].get("content", "") if messages else ""
        if system == DECISION_PROMPT:
            return self._decide(user)
        if system in STRATEGY_PROMPTS.values():
            return self._extract(user)
        if system == PING_PROMPT:
            return Reply(json.dumps({"memories": [], "forget": []}))
        # Summaries and compaction: the bench's sessions stay far below the token limit.
        self._count("other_calls")
        return Reply(json.dumps({"summary": "User shared some facts."}))

    def _extract(self, transcript: str) -> Reply:
        memories = []
        for number, text in _USER_LINE.findall(transcript):
            fact = self._by_turn.get(text)
            if fact is None:
                self._count("unknown_turns")
                continue
            memories.append({**fact.as_memory(), "source": [int(number)]})
        self._count("extraction_calls")
        self._count("facts_returned", len(memories))
        return Reply(json.dumps({"memories": memories, "forget": []}))

    def _decide(self, prompt: str) -> Reply:
        existing, _, new = prompt.partition("\n\nNew facts:\n")
        shown = {}
        for line in existing.splitlines()[1:]:  # after "Existing memories:"
            short, _, text = line.partition(": ")
            shown[text] = short
        decisions = []
        for line in new.splitlines():
            number, _, text = line.partition(": ")
            targets = [shown[f.replaces] for f in self._by_fact.get(text, []) if f.replaces in shown]
            target = targets[0] if targets else None
            if target:
                decisions.append({"fact": int(number), "action": "UPDATE", "id": target, "text": text,
                                  "reason": "contradicts an earlier memory"})  # fmt: skip
                self._count("decided_update")
            else:
                decisions.append({"fact": int(number), "action": "ADD", "id": None, "text": None,
                                  "reason": "new information"})  # fmt: skip
                self._count("decided_add")
        self._count("decision_calls")
        return Reply(json.dumps({"decisions": decisions}))
