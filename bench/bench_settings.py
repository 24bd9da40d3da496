"""Settings for the gate benchmark's server: the portal's own, with the URL map that
adds the benchmark's floor endpoint. Never used outside bench/gates.py."""

from portal.settings import *  # noqa: F403  (the portal's settings, unchanged)

ROOT_URLCONF = "bench.bench_urls"
