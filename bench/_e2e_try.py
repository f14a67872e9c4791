import sys, tempfile, json
from pathlib import Path
from bench.env import prepare_environment

tmp = tempfile.mkdtemp()
prepare_environment(Path(tmp))
from bench.env import private_redis
from bench import locomo_e2e
from memory import locomo

data = Path("../shared/data/locomo/locomo10.json").resolve()
if len(sys.argv) > 2:
    raw = json.loads(data.read_text())[: int(sys.argv[2])]
    data = Path(tmp) / "sub.json"
    data.write_text(json.dumps(raw))
with private_redis(Path(tmp) / "redis"):
    r = locomo_e2e.run(data, extractor=sys.argv[1], progress_factory=locomo.Progress)
print(json.dumps(r, indent=1))
