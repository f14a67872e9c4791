"""How common each query word is in a scope, cached briefly: BM25 drops words most memories contain."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from memory.index import index_name
from memory.query import escape_tag, keyword_clause
from memory.raw_search import run_pipeline
from memory.search_params import SearchParams


@dataclass
class TermCounts:
    """How many of a scope's memories there are, and how many contain each word, as counted recently."""

    expires: float
    total: int
    per_term: dict[str, int]


# Word counts move slowly; a user's turns within a minute reuse them (saves a round trip per turn).
_term_counts: OrderedDict[str, TermCounts] = OrderedDict()
_term_counts_lock = threading.Lock()
TERM_COUNTS_TTL_SECONDS = 60.0
TERM_COUNTS_MAX_SCOPES = 10_000


def _cache_key(base: str, cache_key: str | None) -> str:
    # Per server too: tests, benches and the eval point one process at several Redis instances.
    return f"{settings.REDIS_URL} {cache_key or base}"


def _fresh_counts(key: str) -> TermCounts | None:
    with _term_counts_lock:
        counts = _term_counts.get(key)
    return counts if counts is not None and counts.expires >= time.monotonic() else None


def cached_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> TermCounts | None:
    """The counts of this scope if fresh in the cache and covering every word; else None."""
    counts = _fresh_counts(_cache_key(base, cache_key))
    if counts is None or any(t not in counts.per_term for t in terms):
        return None
    return counts


def _remember(key: str, counts: TermCounts) -> None:
    with _term_counts_lock:
        _term_counts[key] = counts
        _term_counts.move_to_end(key)
        while len(_term_counts) > TERM_COUNTS_MAX_SCOPES:
            _term_counts.popitem(last=False)


def _fresh(total: int) -> TermCounts:
    return TermCounts(expires=time.monotonic() + TERM_COUNTS_TTL_SECONDS, total=total, per_term={})


def _count_args(base: str) -> list[Any]:
    return ["FT.SEARCH", index_name(), base, "LIMIT", 0, 0, "DIALECT", 2]


def scope_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> TermCounts:
    """The scope's size and each word's count (one pipelined count per word not cached yet)."""
    key = _cache_key(base, cache_key)
    counts = _fresh_counts(key)
    unknown = terms if counts is None else [t for t in terms if t not in counts.per_term]
    if counts is not None and not unknown:
        return counts
    per_word = [_count_args(f"{base} {keyword_clause([t])}") for t in unknown]
    replies = run_pipeline([_count_args(base), *per_word])
    counts = _fresh(int(replies[0][0])) if counts is None else counts
    counts.per_term.update({t: int(reply[0]) for t, reply in zip(unknown, replies[1:], strict=True)})
    _remember(key, counts)
    return counts


# Counting, dropping and searching in one round trip for a scope the cache does not cover yet: the
# counts decide which words BM25 searches, so as separate commands they cost a round trip each.
# The queries are the ones `scope_word_counts` and `keyword_clause` build: `base @text:(w1 | w2)`
# from words escaped by Python; the rule is `drop_common_terms` (test_search_equivalence checks both).
_COUNTED_KEYWORD_SEARCH = """
local index, base = ARGV[1], ARGV[2]
local share, min_memories = tonumber(ARGV[3]), tonumber(ARGV[4])
local vectors_above, total, n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local words, ranks, counts = {}, {}, {}
for t = 1, n do
  local at = 8 + 3 * (t - 1)
  words[t], ranks[t], counts[t] = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
end
local search = {}
for at = 8 + 3 * n, #ARGV do search[#search + 1] = ARGV[at] end
local function count(query)
  return redis.call('FT.SEARCH', index, query, 'LIMIT', 0, 0, 'DIALECT', 2)[1]
end
if total < 0 then total = count(base) end
for t = 1, n do
  if counts[t] < 0 then counts[t] = count(base .. ' @text:(' .. words[t] .. ')') end
end
local kept = {}
for t = 1, n do
  if n < 2 or total < min_memories or counts[t] <= share * total then kept[#kept + 1] = t end
end
if #kept == 0 then
  local rarest = 1
  for t = 2, n do
    local fewer = counts[t] < counts[rarest]
    if fewer or (counts[t] == counts[rarest] and ranks[t] < ranks[rarest]) then rarest = t end
  end
  kept = {rarest}
end
local clause = {}
for i, t in ipairs(kept) do clause[i] = words[t] end
local query = base .. ' @text:(' .. table.concat(clause, ' | ') .. ')'
local returned = {}
for i = 2, #search do returned[#returned + 1] = search[i] end
if vectors_above >= 0 and total > vectors_above then returned[#returned + 1] = 'embedding' end
local command = {'FT.SEARCH', index, query, 'WITHSCORES', 'SCORER', 'BM25', 'RETURN', #returned}
for _, name in ipairs(returned) do command[#command + 1] = name end
for _, arg in ipairs({'LIMIT', 0, search[1], 'DIALECT', 2}) do command[#command + 1] = arg end
local reply = redis.call(unpack(command))
return {total, counts, kept, query, reply}
"""


@dataclass(frozen=True)
class CountedKeywordSearch:
    """The EVAL that counts a scope's words, drops the common ones and runs BM25 with the rest (run
    it in the caller's pipeline); `absorb` caches the counts and gives the words kept and the reply."""

    key: str
    cached: TermCounts | None
    terms: list[str]
    command: list[Any]

    def absorb(self, reply: list[Any]) -> tuple[TermCounts, list[str], str, list[Any]]:
        total, per_term, kept, query, bm25 = reply
        counts = self.cached if self.cached is not None else _fresh(int(total))
        counts.per_term.update({t: int(n) for t, n in zip(self.terms, per_term, strict=True)})
        _remember(self.key, counts)
        return counts, [self.terms[int(i) - 1] for i in kept], query.decode(), bm25


def counted_keyword_search(
    base: str,
    terms: list[str],
    *,
    cache_key: str | None,
    params: SearchParams,
    limit: int,
    return_fields: list[str],
    vectors_above: int | None,
) -> CountedKeywordSearch:
    """BM25 over `terms` minus those `drop_common_terms` drops, counting what the cache lacks.
    `vectors_above`: return the embedding too when the scope holds more memories than this."""
    key = _cache_key(base, cache_key)
    cached = _fresh_counts(key)
    known = cached.per_term if cached is not None else {}
    ranks = {t: i for i, t in enumerate(sorted(terms))}
    args: list[Any] = [
        index_name(),
        base,
        repr(params.common_term_share),
        params.common_term_min_memories,
        -1 if vectors_above is None else vectors_above,
        -1 if cached is None else cached.total,
        len(terms),
    ]
    for t in terms:
        args += [escape_tag(t), ranks[t], known.get(t, -1)]
    args += [limit, *return_fields]
    # The index name is declared as the script's key too: on a cluster a node that no longer holds the
    # memory slot answers MOVED (re-resolved by the caller) instead of failing inside the script.
    command = ["EVAL", _COUNTED_KEYWORD_SEARCH, 1, index_name(), *args]
    return CountedKeywordSearch(key, cached, terms, command)


def drop_common_terms(terms: list[str], counts: TermCounts, *, params: SearchParams) -> list[str]:
    """The words not in more than `common_term_share` of the scope (judged in large scopes only)."""
    if len(terms) < 2 or counts.total < params.common_term_min_memories:
        return terms
    per_term = [counts.per_term[t] for t in terms]
    share = params.common_term_share
    kept = [t for t, n in zip(terms, per_term, strict=True) if n <= share * counts.total]
    # All common: keep the rarest so the keyword signal is not simply gone.
    return kept or [min(zip(per_term, terms, strict=True))[1]]


def forget_term_counts() -> None:
    with _term_counts_lock:
        _term_counts.clear()
