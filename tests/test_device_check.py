"""tools/device_check.sh (the one-command GPU check) and its helper tools/device_summary.py.

No GPU is needed: --dry-run prints the plan, and MW_DEVICE_CHECK_FAKE replaces every step by a
tiny command, so the flow (a failing step does not stop the next, timeouts are recorded, the
results folder stays small and flat) is tested for real.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "device_check.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None or shutil.which("timeout") is None, reason="needs bash and timeout")

STEP_LINE = re.compile(r"^  (\S+)\s+(\d+) s  (.*)$")


def _load_summary():
    spec = importlib.util.spec_from_file_location("device_summary", ROOT / "tools" / "device_summary.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["device_summary"] = mod
    spec.loader.exec_module(mod)
    return mod


ds = _load_summary()


def run_script(*args, cwd, env=None, timeout=120):
    e = dict(os.environ)
    e.pop("MW_DEVICE_CHECK_FAKE", None)
    e.update(env or {})
    return subprocess.run([BASH, str(SCRIPT), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def dry_steps(out: str) -> dict[str, tuple[int, str]]:
    return {m.group(1): (int(m.group(2)), m.group(3)) for m in map(STEP_LINE.match, out.splitlines()) if m}


# --------------------------------------------------------------------------- the script itself


@pytest.mark.parametrize("name", ["device_check.sh", "prepare_device_wheels.sh"])
def test_bash_syntax(name):
    p = subprocess.run([BASH, "-n", str(ROOT / "tools" / name)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def _gpu_results_listing():
    d = ROOT / "docs" / "results" / "gpu"
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else None


@pytest.mark.parametrize("extra", [[], ["--out", "x"]], ids=["default-out", "out"])
def test_dry_run_lists_every_step_within_480_s_and_writes_nothing(tmp_path, extra):
    before = _gpu_results_listing()
    p = run_script("--dry-run", *extra, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert p.returncode == 0, p.stderr
    steps = dry_steps(p.stdout)
    assert list(steps) == ["gpu-query", "env", "wheels", "install", "info", "gpu-tests", "validate", "bench",
                           "memcheck", "racecheck"]
    assert sum(lim for lim, _ in steps.values()) <= 480
    assert all(lim > 0 for lim, _ in steps.values())
    cmd = {k: c for k, (_, c) in steps.items()}
    assert "MW_CUDA=ON" in cmd["install"] and "pip install" in cmd["install"]
    assert "--no-build-isolation" in cmd["install"] and "--no-deps" in cmd["install"] and " -e ." in cmd["install"]
    assert "--find-links" in cmd["wheels"] and "--no-index" in cmd["wheels"]
    assert "magma_wino.cli info" in cmd["info"]
    assert "pytest -m gpu" in cmd["gpu-tests"] and "test_gpu.py" in cmd["gpu-tests"] and "--junitxml" in cmd["gpu-tests"]
    assert "validate --backend cuda" in cmd["validate"] and "--json" in cmd["validate"]
    assert "--quick" not in cmd["validate"].split("#")[0]  # the full sweep
    assert "bench --backend cuda --quick" in cmd["bench"] and "--no-baselines" not in cmd["bench"]
    assert "cublas" in cmd["bench"] and "cudnn" in cmd["bench"]
    assert "--tool memcheck" in cmd["memcheck"] and "--tool racecheck" in cmd["racecheck"]
    for s in ("memcheck", "racecheck"):
        assert "--error-exitcode" in cmd[s] and "--quick" in cmd[s]
    assert '"--backend", "cuda", "--quick", "--filter"' in p.stdout  # what the sanitizer runs
    if extra:
        assert f"results folder: {tmp_path / 'x'}" in p.stdout
    else:
        assert "docs/results/gpu/" in p.stdout
    assert list(tmp_path.iterdir()) == []
    assert _gpu_results_listing() == before


def test_help_exits_0(tmp_path):
    p = run_script("--help", cwd=tmp_path)
    assert p.returncode == 0
    assert "--dry-run" in p.stdout and "--wheels" in p.stdout and "MW_DEVICE_CHECK_FAKE" in p.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,msg", [(["--frobnicate"], "unknown option: --frobnicate"),
                                      (["--only", "install,nonsense", "--dry-run"], "unknown step 'nonsense'"),
                                      (["--out"], "--out needs a folder")])
def test_bad_arguments_exit_non_zero_with_a_message(tmp_path, args, msg):
    p = run_script(*args, cwd=tmp_path)
    assert p.returncode != 0
    assert msg in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_only_and_skip_mark_steps_in_the_dry_run(tmp_path):
    p = run_script("--dry-run", "--skip", "memcheck,racecheck", cwd=tmp_path)
    assert p.returncode == 0
    lines = {m.group(1): m.group(3) for m in map(STEP_LINE.match, p.stdout.splitlines()) if m}
    assert lines["memcheck"].endswith("[not selected]") and not lines["bench"].endswith("[not selected]")


# --------------------------------------------------------------------------- the flow, with fake steps


def summary_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 6 and cells[0] not in ("step", "---"):
            rows[cells[0]] = cells
    return rows


def check_folder(res: Path) -> list[Path]:
    files = list(res.iterdir())
    assert all(p.is_file() for p in files), files  # flat
    assert len(files) <= 8
    assert all(p.stat().st_size <= 16 * 1024 * 1024 for p in files)
    return files


def test_fake_run_a_failing_step_does_not_stop_the_next_and_timeouts_are_recorded(tmp_path):
    res = tmp_path / "res"
    p = run_script("--out", str(res), "--python", sys.executable, cwd=tmp_path,
                   env={"MW_DEVICE_CHECK_FAKE": "install=fail,bench=timeout,memcheck=skip",
                        "MW_DEVICE_CHECK_FAKE_LIMIT": "1"})
    assert p.returncode == 1, p.stdout + p.stderr
    files = check_folder(res)
    assert {f.name for f in files} == {"summary.md", "steps.log"}
    text = (res / "summary.md").read_text()
    assert text.startswith("# magma_wino device check: FAIL")
    rows = summary_rows(text)
    assert list(rows) == ["gpu-query", "env", "wheels", "install", "info", "gpu-tests", "validate", "bench",
                          "memcheck", "racecheck"]
    assert rows["install"][1].startswith("FAIL") and rows["install"][4] == "3"
    assert rows["bench"][1].startswith("TIMEOUT") and rows["bench"][4] in ("124", "137")
    assert float(rows["bench"][2]) >= 0.9
    assert rows["memcheck"][1] == "skipped"
    for s in ("env", "wheels", "info", "gpu-tests", "validate", "racecheck"):  # ran after the failure
        assert rows[s][1].startswith("pass"), rows[s]
    assert "MW_CUDA=ON" in rows["install"][5]  # the real command is recorded, the fake in the status
    log = (res / "steps.log").read_text()
    for s in ("env", "install", "validate", "bench", "racecheck"):
        assert f"==== [{s}]" in log
    assert "fake step failing" in log
    assert re.search(r"\[ 4/10\] install\s+fail", p.stdout) and re.search(r"\[ 8/10\] bench\s+timeout", p.stdout)


def test_fake_run_all_ok_passes_and_refuses_a_non_empty_out(tmp_path):
    res = tmp_path / "res"
    p = run_script("--out", str(res), "--python", sys.executable, cwd=tmp_path,
                   env={"MW_DEVICE_CHECK_FAKE": "ok", "MW_DEVICE_CHECK_FAKE_LIMIT": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert (res / "summary.md").read_text().startswith("# magma_wino device check: PASS")
    check_folder(res)
    again = run_script("--out", str(res), "--python", sys.executable, cwd=tmp_path,
                       env={"MW_DEVICE_CHECK_FAKE": "ok"})
    assert again.returncode == 2 and "not empty" in again.stderr


# --------------------------------------------------------------------------- the summary generator


def write_records(path: Path, rows) -> None:
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3">
<testcase classname="tests.test_gpu" name="test_a"/>
<testcase classname="tests.test_gpu" name="test_b"><failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_gpu" name="test_c"><skipped message="needs two GPUs"/></testcase>
</testsuite></testsuites>
"""


def synthetic_results(res: Path) -> None:
    res.mkdir()
    (res / "pytest.xml").write_text(JUNIT)
    (res / "validate.json").write_text(json.dumps({"backend": "cuda", "results": [
        {"group": "vgg16", "m": 4, "r": 3, "N": 1, "C": 64, "K": 64, "size": [56, 57], "dtype": "float32",
         "variant": "dense", "density": 1.0, "seed": 1, "error": 1e-6, "bound": 1e-5, "ok": True, "detail": ""},
        {"group": "3d", "m": 2, "r": 3, "N": 1, "C": 4, "K": 6, "size": [5, 7, 6], "dtype": "float64",
         "variant": "dense", "density": 1.0, "seed": 7, "error": float("inf"), "bound": 1e-12, "ok": False,
         "detail": "RuntimeError: boom"}]}))
    (res / "bench.json").write_text(json.dumps({"meta": {"gpu": "NVIDIA H200"}, "rows": [
        {"product": "dense", "backend": "cuda", "ok": True},
        {"product": "baseline", "backend": "im2col+cublas", "ok": True},
        {"product": "baseline", "backend": "cudnn(torch)", "ok": True}]}))
    (res / "bench.md").write_text("Command: `magma-wino bench`\n\n| layer | ms |\n|---|---|\n| conv5_1 | 0.1 |\n")
    (res / "info.txt").write_text("python: 3.12.3 (/opt/torch/.venv/bin/python3)\n"
                                  "torch: 2.11.0 (CUDA available: True, cuDNN 91200)\n"
                                  "  cuda backend     : usable\n")
    (res / "steps.log").write_text("log\n")


def test_summary_of_synthetic_records(tmp_path):
    res = tmp_path / "res"
    synthetic_results(res)
    rec = tmp_path / "records.tsv"
    write_records(rec, [
        ("gpu-query", 5, 5, 0.1, 0, "pass", "", "nvidia-smi"),
        ("install", 150, 150, 150.0, 124, "timeout", "", "MW_CUDA=ON pip install -e ."),
        ("gpu-tests", 60, 60, 12.5, 1, "fail", "", "pytest -m gpu | x"),
        ("validate", 60, 60, 30.2, 0, "pass", "", "validate"),
        ("memcheck", 40, 0, 0.0, "-", "skipped", "compute-sanitizer not found", "compute-sanitizer"),
        "a line that is no record",
    ])
    _, text = ds.write_summary(rec, res, gpu="NVIDIA H200", driver="580.159.04", memory="143771 MiB",
                               folder="docs/results/gpu/2026-12-01-NVIDIA-H200", date="2026-12-01")
    assert (res / "summary.md").read_text() == text
    assert text.startswith("# magma_wino device check: FAIL")
    rows = summary_rows(text)
    assert rows["install"][1] == "TIMEOUT" and rows["install"][2] == "150.0" and rows["install"][4] == "124"
    assert rows["gpu-tests"][1] == "FAIL" and rows["validate"][1] == "pass"
    assert rows["memcheck"][1] == "skipped" and rows["memcheck"][4] == ""
    assert "pytest -m gpu \\| x" in text  # pipes escaped in the table
    assert "NVIDIA H200, driver 580.159.04, 143771 MiB" in text
    assert "3 tests: 1 passed, 1 failed, 0 errors, 1 skipped" in text and "tests.test_gpu::test_b" in text
    assert "1 of 2 cases within tolerance, 1 failed" in text and "RuntimeError: boom" in text and "seed=7" in text
    assert "baselines: cudnn(torch), im2col+cublas" in text and "| conv5_1 | 0.1 |" in text
    assert "memcheck skipped: compute-sanitizer not found" in text
    assert "PyTorch not usable" not in text
    assert "docs/results/gpu/2026-12-01-NVIDIA-H200/" in text
    check_folder(res)


def test_summary_verdicts(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    (res / "info.txt").write_text("torch: not importable (ModuleNotFoundError: No module named 'torch')\n")
    ok = [ds.Step("env", 15, 15, 1.0, 0, "pass"), ds.Step("memcheck", 40, 0, 0.0, None, "skipped", "x")]
    assert ds.render_summary(ok, res).startswith("# magma_wino device check: PASS")
    assert "PyTorch not usable" in ds.render_summary(ok, res)
    text = ds.render_summary(ok, res, planned=["env", "memcheck", "bench"])
    assert text.startswith("# magma_wino device check: INCOMPLETE") and "before them): bench" in text
    (res / "pytest.xml").write_text('<testsuite tests="2" skipped="2" failures="0" errors="0">'
                                    '<testcase classname="t" name="a"><skipped message="no CUDA GPU"/></testcase>'
                                    '<testcase classname="t" name="b"><skipped message="no CUDA GPU"/></testcase>'
                                    "</testsuite>")
    text = ds.render_summary(ok, res)
    assert text.startswith("# magma_wino device check: FAIL") and "every GPU test was skipped" in text
    (res / "pytest.xml").write_text("<not xml")
    assert "pytest.xml could not be read" in ds.render_summary(ok, res)


def test_folder_limits_cut_big_files_and_count_files(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    big = res / "steps.log"
    big.write_bytes(b"head\n" + b"x" * 5000 + b"\ntail\n")
    assert ds.truncate_file(big, 1000)
    data = big.read_bytes()
    assert len(data) <= 1000 and data.startswith(b"head") and data.endswith(b"tail\n") and b"bytes cut" in data
    assert not ds.truncate_file(big, 1000)
    for i in range(8):
        (res / f"f{i}.txt").write_text("x")
    (res / "sub").mkdir()
    notes = ds.enforce_limits(res)
    assert any("10 files" in n for n in notes) and any("`sub/` is a folder" in n for n in notes)


def test_missing_build_deps(tmp_path):
    pp = tmp_path / "pyproject.toml"
    pp.write_text('[build-system]\nrequires = ["pytest>=1", "pytest>=999", "surely-not-a-package-mw>=0.1"]\n'
                  'build-backend = "x"\n')
    assert ds.missing_build_deps(pp) == ["pytest>=999", "surely-not-a-package-mw>=0.1"]
    assert ds.build_requires(ROOT / "pyproject.toml")[:1] == ["scikit-build-core>=0.10"]
    assert "cython-cmake>=0.2" in ds.build_requires(ROOT / "pyproject.toml")


def test_env_report_is_key_value_lines():
    lines = ds.env_report()
    keys = [ln.split(":", 1)[0] for ln in lines]
    assert {"python", "torch", "cupy", "nvcc", "compute-sanitizer", "nvidia-smi"} <= set(keys)
    assert len(keys) == len(set(keys))


def test_install_docs_give_the_script_limits(tmp_path):
    """docs/install.md's step table carries the same limits as the script."""
    p = run_script("--dry-run", cwd=tmp_path)
    limits = {k: lim for k, (lim, _) in dry_steps(p.stdout).items()}
    doc = (ROOT / "docs" / "install.md").read_text()
    documented = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `([a-z-]+)` \| (\d+) s \|", doc, re.M)}
    assert documented == limits
    assert f"the limits sum to {sum(limits.values())} s" in doc
