"""Learn the dev suite once, then ask under several settings."""
import sys, tempfile, itertools, json
from pathlib import Path
from bench.env import prepare_environment
tmp = tempfile.mkdtemp()
prepare_environment(Path(tmp))
from django.test import override_settings
from unittest import mock
from bench.env import private_redis
from bench.persona_data import load_suite, SUITES_DIR
from bench.persona_grading import grade, PersonaOutcome
from bench import persona_inprocess as pi
import chat.offline as off
import memory.selectors as sel

suite = load_suite(SUITES_DIR / (sys.argv[1] + ".json"))
configs = json.loads(sys.argv[2])
with private_redis(Path(tmp) / "redis"):
    for p in suite.personas:
        pi.learn(suite, p)
    for cfg in configs:
        settings_ = {k: v for k, v in cfg.items() if k.isupper() and not k.startswith("OFF_") and not k.startswith("SEL_")}
        patches = [mock.patch.object(off, k[4:], v) for k, v in cfg.items() if k.startswith("OFF_")]
        patches += [mock.patch.object(sel, k[4:], v) for k, v in cfg.items() if k.startswith("SEL_")]
        for pt in patches: pt.start()
        with override_settings(**settings_):
            sel.forget_term_counts()
            outcomes = []
            for p in suite.personas:
                answers, broad, facts = pi.ask(suite, p, answer_text=pi.offline_answer)
                outcomes.append(PersonaOutcome(p, facts, answers, broad, []))
            g = grade(suite, outcomes)
        for pt in patches: pt.stop()
        print(json.dumps(cfg), "answered", g["questions_answered"]["percent"], "broad", g["broad_questions_recall"]["percent"], flush=True)
