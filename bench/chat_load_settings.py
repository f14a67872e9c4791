"""Settings for the chat load bench's what-if server only: the product's settings, with a larger
channels-redis `capacity`.

channels-redis keeps every process-local channel of one daphne process in ONE Redis key and drops
(with an INFO log line) any message sent while that key holds `capacity` messages (default 100).
Under load the chat's per-chunk `delta` frames fill it, `done` frames are lost and clients hang;
this module shows what the bench measures once that limit is out of the way. Never used by the
product.
"""

import os

from config.settings import *  # noqa: F403 - the product's settings, unchanged but for the layer
from config.settings import CHANNEL_LAYERS

CHANNEL_LAYERS["default"]["CONFIG"]["capacity"] = int(os.environ.get("BENCH_CHANNEL_CAPACITY", "100"))  # type: ignore[index]
