import tempfile, time, json
from pathlib import Path
from bench.env import prepare_environment

tmp = Path(tempfile.mkdtemp())
prepare_environment(tmp)
from bench.env import private_redis
from bench import persona_ws
from bench.persona_data import load_suite, SUITES_DIR
from memory.extraction import queue
from memory import keys
from core.redis_client import get_redis

suite = load_suite(SUITES_DIR / "dev.json")
with private_redis(tmp / "redis") as url:
    with persona_ws.servers(redis_url=url, work_dir=tmp) as s:
        for p in suite.personas[:2]:
            b = persona_ws.Browser(s.url)
            for chat in p.chats:
                s.set_clock(chat.at)
                sid = b.new_chat()
                print(p.id, chat.at, [d["type"] for d in b.chat(sid, list(chat.messages))])
                try:
                    persona_ws.wait_for_extraction(timeout=10)
                except RuntimeError as e:
                    print("STUCK", e)
                    r = get_redis()
                    for part in ("seq", "cursor", "lock", "last_at", "retry_at", "failures"):
                        k = keys.extraction(sid, part)
                        print(part, r.type(k), r.get(k) if r.type(k) == b"string" else r.hgetall(k))
                    print("pending turns", [t.seq for t in queue.pending_turns(sid, after=0)])
                    print(open(tmp / "worker.log").read()[-1500:])
                    raise SystemExit
