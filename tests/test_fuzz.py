"""Fuzz of the public API (tests/fuzz_api.py): every bad input a clear exception naming the
argument, no crash, hang or silent wrong answer.

Each batch runs in its own Python process (``python tests/fuzz_api.py --seed S --calls N
--backend B``), so that a crash of a compiled extension (segfault, abort) or a hang is one
failed batch instead of a dead pytest.  Failing calls are printed with their source;
replay one with ``python tests/fuzz_api.py --replay "<src>"`` or rerun the whole batch with
the printed command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

DRIVER = Path(__file__).with_name("fuzz_api.py")
CALLS_PER_BATCH = 600
#: (seed, backend): numpy and emulator alternate; the emulator runs the real kernel source.
BATCHES = ((1, "numpy"), (2, "emulator"), (3, "numpy"), (4, "emulator"))
BATCH_TIMEOUT_S = 90  # a batch takes a few seconds; past this it hangs
MIN_CALLS = 1000


def _emulator_built() -> bool:
    try:
        import magma_wino._emu  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _under_sanitizer() -> bool:
    """ASan/TSan need terabytes of address space: no RLIMIT_AS for them."""
    env = os.environ.get("LD_PRELOAD", "") + os.environ.get("ASAN_OPTIONS", "") + os.environ.get("TSAN_OPTIONS", "")
    return "san" in env.lower()


def _command(seed: int, backend: str) -> list[str]:
    cmd = [sys.executable, str(DRIVER), "--seed", str(seed), "--calls", str(CALLS_PER_BATCH), "--backend", backend]
    if _under_sanitizer():
        cmd += ["--memory-gib", "0"]
    return cmd


def _run(seed: int, backend: str) -> dict:
    return _run_cmd(_command(seed, backend), BATCH_TIMEOUT_S)


def _run_cmd(cmd: list[str], timeout: float) -> dict:
    """Run one batch; a hang or a dead process is one failure, naming the last call started."""
    shown = " ".join(cmd[1:])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=DRIVER.parent.parent)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"calls": 0, "failures": [{"src": _last_call(err), "why": f"batch hung (> {timeout} s)",
                                          "where": "?"}], "cmd": shown}
    lines = p.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"calls": 0, "failures": [{"src": _last_call(p.stderr),
                                          "why": f"batch died (exit status {p.returncode}): {p.stderr[-1500:]}",
                                          "where": "?"}], "cmd": shown}
    res["cmd"] = shown
    return res


def _last_call(stderr: str) -> str:
    calls = [ln[2:] for ln in stderr.splitlines() if ln.startswith("> ")]
    return calls[-1] if calls else "(before the first call)"


def test_fuzz_public_api_bad_inputs_raise_clear_errors_and_good_inputs_match_the_reference():
    batches = [(s, b if b != "emulator" or _emulator_built() else "numpy") for s, b in BATCHES]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda sb: _run(*sb), batches))
    calls = sum(r["calls"] for r in results)
    report = []
    for r in results:
        for f in r["failures"]:
            report.append(f"[{r['cmd']}] [{f['where']}]\n    {f['src']}\n    {f['why']}")
    if report:
        print(f"{len(report)} failing calls of {calls}:\n" + "\n".join(report))
    assert not report, f"{len(report)} of {calls} fuzzed calls failed (printed above); first: {report[0]}"
    assert calls >= MIN_CALLS, f"only {calls} fuzzed calls ran, want >= {MIN_CALLS}"


def test_fuzz_driver_judges_outcomes():
    """The driver's verdicts themselves: wrong type, unnamed argument, accepted bad value."""
    sys.path.insert(0, str(DRIVER.parent))
    try:
        import fuzz_api as fz  # noqa: PLC0415
    finally:
        sys.path.pop(0)

    def verdict(src, broken, bad):
        return fz.judge(fz.Case("t", src, broken, bad), 10.0)

    assert verdict("[][1]", "x", fz.E("0")) is not None  # IndexError: wrong type
    assert "wrong exception type" in verdict("[][1]", "x", fz.E("0"))["why"]
    assert "does not name" in verdict("int('a')", "x", fz.E("0"))["why"]
    assert verdict("int('x')", "x", fz.E("0")) is None  # ValueError naming x (the 'x' in the message)
    assert "expected TypeError" in verdict("int('x')", "x", fz.T("0"))["why"]
    assert "accepted a bad" in verdict("1 + 1", "x", fz.E("0"))["why"]
    assert verdict("1 + 1", "x", fz.Odd("0")) is None
    assert "valid call raised" in verdict("1 / 0", None, None)["why"]
    bad = fz.Case("t", "2", None, None, check=lambda r: None if r == 3 else f"got {r}")
    assert "wrong result" in fz.judge(bad, 10.0)["why"]


@pytest.mark.parametrize("src,expect", [
    ("cost.cost_table([], [2])", "ValueError: layers must not be empty"),
    ("cost.matvec_cost(5)", "TypeError: T must be a matrix"),
])
def test_fuzz_replay_prints_the_outcome(src, expect):
    p = subprocess.run([sys.executable, str(DRIVER), "--replay", src], capture_output=True, text=True, timeout=60,
                       cwd=DRIVER.parent.parent)
    assert expect in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("kind", ["segfault", "hang"])
def test_a_crashing_or_hanging_batch_is_a_failure_naming_its_last_call(kind):
    code = ("import os, signal, sys, time; print('> boom()', file=sys.stderr, flush=True); "
            + ("os.kill(os.getpid(), signal.SIGSEGV)" if kind == "segfault" else "time.sleep(60)"))
    res = _run_cmd([sys.executable, "-c", code], timeout=3)
    (fail,) = res["failures"]
    assert fail["src"] == "boom()"
    assert ("died" if kind == "segfault" else "hung") in fail["why"]
