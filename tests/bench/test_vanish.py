"""bench.vanish: a runner host that vanishes mid-call costs a 503 in seconds, not the request
timeout. Runs where iptables can drop packets (root on Linux); skipped elsewhere, with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.vanish import iptables_usable
from tests.support.bento_server import ROOT


@pytest.mark.skipif(not iptables_usable(), reason="needs root and a working iptables to make a host vanish")
def test_a_vanished_runner_host_is_a_503_long_before_the_request_timeout():
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_CN_ML_")}
    run = subprocess.run([sys.executable, "-m", "bench.vanish", "--request-timeout", "120"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["status"] == 503, result
    assert result["ended_after_s"] < 30, result  # keep-alive: about 14 s; without it, the whole 120 s
