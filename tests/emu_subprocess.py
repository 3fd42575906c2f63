"""Results of a test module's case function in a fresh interpreter under emulator settings.

The emulator reads its settings (``MW_EMU_ASYNC_COPY``, ``MW_EMU_ORDER``,
``MW_EMU_WMMA_PERMUTE``, ...) once per process, so a test that compares kernel results under
other settings runs the same cases in a child process whose environment is this one's
without ``MW_EMU_*`` plus the given settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

TESTS = os.path.dirname(os.path.abspath(__file__))


def results_under_env(module: str, function: str, env: dict[str, str], timeout: float = 300) -> Any:
    """``module.function()`` (a JSON-serialisable result) computed in a child interpreter with
    the emulator settings ``env``; asserts the child succeeded."""
    script = (f"import json, sys; sys.path.insert(0, {TESTS!r}); import {module} as t; "
              f"print(json.dumps(t.{function}()))")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MW_EMU_")}
    child_env.update(env)
    proc = subprocess.run([sys.executable, "-c", script], env=child_env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
