import sys, tempfile
from pathlib import Path
from bench.env import prepare_environment
tmp = tempfile.mkdtemp(); prepare_environment(Path(tmp))
from bench.env import private_redis
from bench.persona_data import load_suite, SUITES_DIR
from bench import persona_inprocess as pi
suite = load_suite(SUITES_DIR / (sys.argv[1] + ".json"))
with private_redis(Path(tmp) / "redis"):
    for p in suite.personas:
        if p.id not in sys.argv[2:]: continue
        pi.learn(suite, p)
        print("==", p.id)
        for c in p.chats:
            for m in c.messages: print("  SAID:", m[:160])
        for t in pi._fact_memories(pi._user_id(suite, p)): print("  MEM:", t)
