#!/usr/bin/env python3
"""Helpers of ``tools/device_check.sh`` (standard library only; runs on the GPU machine's python3).

    python3 tools/device_summary.py env                  # versions of what the check relies on
    python3 tools/device_summary.py missing-build-deps   # build requirements absent or too old
    python3 tools/device_summary.py summary --records R --results DIR [...]   # DIR/summary.md

``summary`` reads the step records written by device_check.sh (one tab-separated line per
step: name, limit, effective limit, seconds, exit status, status, note, command) and the
result files in DIR (pytest.xml, validate.json, bench.json, bench.md, info.txt), keeps DIR
within what can be copied back whole (flat, at most 8 files, none over 16 MiB: larger files
are cut, keeping their head and tail) and writes DIR/summary.md.  It never fails because a
result file is missing or malformed: it says so in the summary instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 8
MAX_BYTES = 16 * 1024 * 1024
FAILING = ("fail", "timeout", "killed")
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- step records


@dataclass
class Step:
    name: str
    limit: int
    effective: int
    seconds: float
    rc: int | None
    status: str  # pass | fail | timeout | killed | skipped
    note: str = ""
    command: str = ""


def read_records(path: str | Path) -> list[Step]:
    """The step records of device_check.sh (lines that do not parse are ignored)."""
    steps = []
    for line in Path(path).read_text(errors="replace").splitlines():
        f = line.split("\t")
        if len(f) < 6:
            continue
        f += [""] * (8 - len(f))
        try:
            rc = int(f[4]) if f[4] not in ("", "-") else None
            steps.append(Step(f[0], int(f[1]), int(f[2]), float(f[3]), rc, f[5], f[6], f[7]))
        except ValueError:
            continue
    return steps


# --------------------------------------------------------------------------- result files


def truncate_file(path: Path, limit: int = MAX_BYTES) -> bool:
    """Cut ``path`` to at most ``limit`` bytes, keeping its head and tail; True if it was cut."""
    size = path.stat().st_size
    if size <= limit:
        return False
    marker = f"\n\n[... {{}} bytes cut by tools/device_summary.py to keep this file under {limit} bytes ...]\n\n"
    keep = limit - len(marker.format(size)) - 16
    head, tail = keep // 4, keep - keep // 4
    with open(path, "rb") as fh:
        a = fh.read(head)
        fh.seek(size - tail)
        b = fh.read(tail)
    path.write_bytes(a + marker.format(size - head - tail).encode() + b)
    return True


def enforce_limits(results: Path, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> list[str]:
    """Cut files over ``max_bytes``; notes on what does not fit (sub-folders, too many files)."""
    notes = []
    entries = sorted(results.iterdir())
    for p in entries:
        if p.is_dir():
            notes.append(f"`{p.name}/` is a folder: the results folder should be flat")
        elif p.is_file() and truncate_file(p, max_bytes):
            notes.append(f"`{p.name}` was over {max_bytes // (1024 * 1024)} MiB and was cut (head and tail kept)")
    n = sum(1 for p in entries if p.is_file()) + (0 if (results / "summary.md").exists() else 1)
    if n > max_files:
        notes.append(f"{n} files in the results folder (at most {max_files} can be copied back whole)")
    return notes


def pytest_section(path: Path) -> tuple[list[str], list[str]]:
    """Lines about the junit file, and warnings (failures, everything skipped)."""
    if not path.exists():
        return ["no pytest.xml (the GPU tests did not run or did not finish)"], []
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        return [f"pytest.xml could not be read: {exc}"], []
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tot = {k: sum(int(s.get(k, 0) or 0) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
    lines = [f"{tot['tests']} tests: {passed} passed, {tot['failures']} failed, {tot['errors']} errors, "
             f"{tot['skipped']} skipped"]
    warn = []
    bad, reasons = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                msg = (el.get("message") or "").splitlines()[0][:160] if el.get("message") else ""
                bad.append(f"- {tag}: `{name}` {msg}")
        sk = case.find("skipped")
        if sk is not None:
            why = (sk.get("message") or "")[:160]
            reasons[why] = reasons.get(why, 0) + 1
    lines += bad[:40] + ([f"- ... {len(bad) - 40} more"] if len(bad) > 40 else [])
    if reasons:
        lines.append("skip reasons: " + "; ".join(f"{r or '(none)'} ×{n}" for r, n in sorted(reasons.items())))
    if tot["tests"] and tot["skipped"] == tot["tests"]:
        warn.append("every GPU test was skipped: the CUDA backend was not usable (see info.txt)")
    if tot["tests"] == 0:
        warn.append("no GPU test ran")
    return lines, warn


def validate_section(path: Path) -> list[str]:
    if not path.exists():
        return ["no validate.json (the validation did not run or did not finish)"]
    try:
        data = json.loads(path.read_text())
        rows = data["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"validate.json could not be read: {exc}"]
    failed = [r for r in rows if not r.get("ok")]
    lines = [f"backend {data.get('backend')}: {len(rows) - len(failed)} of {len(rows)} cases within tolerance, "
             f"{len(failed)} failed"]
    for r in failed[:40]:
        size = "x".join(str(s) for s in r.get("size", []))
        lines.append(f"- `{r.get('group')}` F({r.get('m')},{r.get('r')}) {r.get('dtype')} {r.get('variant')} "
                     f"d={r.get('density')} N={r.get('N')} C={r.get('C')} K={r.get('K')} {size} "
                     f"seed={r.get('seed')}: error {r.get('error')} bound {r.get('bound')} {r.get('detail', '')}")
    if len(failed) > 40:
        lines.append(f"- ... {len(failed) - 40} more")
    return lines


def bench_section(results: Path) -> list[str]:
    lines = []
    js = results / "bench.json"
    if js.exists():
        try:
            data = json.loads(js.read_text())
            rows = data.get("rows", [])
            ok = [r.get("ok") for r in rows if r.get("ok") is not None]
            base = sorted({r.get("backend", "?") for r in rows if r.get("product") == "baseline"})
            lines.append(f"{len(rows)} rows, {sum(bool(o) for o in ok)}/{len(ok)} within tolerance; "
                         f"baselines: {', '.join(base) or 'none'}; GPU: {data.get('meta', {}).get('gpu')}")
        except (OSError, ValueError, AttributeError) as exc:
            lines.append(f"bench.json could not be read: {exc}")
    md = results / "bench.md"
    if md.exists():
        text = md.read_text(errors="replace")
        lines += ["", text[:200_000].rstrip()]
    elif not js.exists():
        lines.append("no bench.json / bench.md (the benchmark did not run or did not finish)")
    return lines


def info_facts(path: Path) -> dict[str, str]:
    """``key: value`` lines of info.txt (the env probe and ``magma-wino info``)."""
    facts: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            k, sep, v = line.strip().partition(":")
            if sep and k and k not in facts:
                facts[k.strip()] = v.strip()
    return facts


# --------------------------------------------------------------------------- summary.md


def render_summary(steps: list[Step], results: Path, *, gpu: str = "", driver: str = "", memory: str = "",
                   folder: str = "", planned: list[str] | None = None, date: str = "") -> str:
    """The text of summary.md (also cuts oversized files in ``results``)."""
    notes = enforce_limits(results)
    facts = info_facts(results / "info.txt")
    t_lines, t_warn = pytest_section(results / "pytest.xml")
    notes += t_warn
    torch = facts.get("torch", "")
    if not torch:
        notes.append("PyTorch status unknown (no `torch:` line in info.txt)")
    elif "not importable" in torch or "CUDA available: False" in torch:
        notes.append(f"PyTorch not usable ({torch}): the bench's cuDNN rows come from CuPy's cuDNN "
                     "binding where it is there, otherwise there are none")
    if "not usable" in facts.get("cuda backend", ""):
        notes.append("`magma-wino info`: cuda backend not usable here")
    for s in steps:
        if s.status == "skipped" and s.note:
            notes.append(f"{s.name} skipped: {s.note}")
    done = {s.name for s in steps}
    missing = [n for n in (planned or []) if n not in done]
    if missing:
        notes.append("not run (the check stopped before them): " + ", ".join(missing))
    bad = [s for s in steps if s.status in FAILING]
    verdict = "PASS" if not bad and not t_warn and not missing else "FAIL"
    if missing and not bad:
        verdict = "INCOMPLETE"

    out = [f"# magma_wino device check: {verdict}", ""]
    out.append(f"- GPU: {gpu or 'unknown'}" + (f", driver {driver}" if driver else "") + (f", {memory}" if memory else ""))
    if date:
        out.append(f"- date (UTC): {date}")
    for k in ("python", "cupy", "torch", "nvcc", "compute-sanitizer", "cuda extension", "CUDA runtime"):
        if k in facts:
            out.append(f"- {k}: {facts[k]}")
    if folder:
        out.append(f"- commit this folder as `{folder}/`")
    total = sum(s.seconds for s in steps)
    out += ["", f"## Steps ({total:.0f} s in all)", "",
            "| step | status | seconds | limit s | exit | command |", "|---|---|---|---|---|---|"]
    for s in steps:
        lim = str(s.limit) if s.effective in (s.limit, 0) else f"{s.effective} (of {s.limit})"
        st = s.status.upper() if s.status in FAILING else s.status
        st += f" ({s.note})" if s.note and s.status != "skipped" else ""
        cmd = s.command.replace("|", "\\|")
        out.append(f"| {s.name} | {st} | {s.seconds:.1f} | {lim} | {'' if s.rc is None else s.rc} | `{cmd}` |")
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    out += ["", "## GPU tests (pytest -m gpu)", ""] + t_lines
    out += ["", "## Validation (magma-wino validate --backend cuda)", ""] + validate_section(results / "validate.json")
    out += ["", "## Benchmark (magma-wino bench --backend cuda --quick)", ""] + bench_section(results)
    files = sorted(p for p in results.iterdir() if p.is_file() and p.name != "summary.md")
    out += ["", "## Files", ""] + [f"- `{p.name}` ({p.stat().st_size} bytes)" for p in files] + ["- `summary.md`", ""]
    return "\n".join(out)


def write_summary(records: Path, results: Path, **kw) -> tuple[Path, str]:
    steps = read_records(records) if records.exists() else []
    text = render_summary(steps, results, **kw)
    p = results / "summary.md"
    p.write_text(text)
    truncate_file(p)
    return p, text


# --------------------------------------------------------------------------- env probe


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run(argv: list[str], timeout: float = 10) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({type(exc).__name__}: {exc})"


def find_tool(name: str) -> str | None:
    """``name`` on PATH, beside nvcc, or under CUDA's standard prefix."""
    hit = shutil.which(name)
    if hit:
        return hit
    dirs = []
    nvcc = shutil.which("nvcc") or os.environ.get("CUDACXX")
    if nvcc:
        dirs.append(Path(nvcc).resolve().parent)
    dirs += [Path("/usr/local/cuda/bin"), Path(f"/usr/local/cuda/{name}")]
    for d in dirs:
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return str(d / name)
    return None


def env_lines() -> Iterator[str]:
    """``key: value`` lines, quick ones first (PyTorch, the slowest import, last)."""
    purelib = sysconfig.get_paths()["purelib"]
    yield f"python: {sys.version.split()[0]} ({sys.executable})"
    yield f"site-packages: {purelib} ({'writable' if os.access(purelib, os.W_OK) else 'NOT writable'})"
    yield f"cpus: {os.cpu_count()}"
    for dist in ("numpy", "scikit-build-core", "cython", "cython-cmake", "cmake", "ninja", "packaging", "pytest",
                 "hypothesis", "rich", "matplotlib", "jax", "magma-wino"):
        yield f"{dist}: {_version(dist) or 'not installed'}"
    smi = shutil.which("nvidia-smi")
    yield "nvidia-smi: " + (_run([smi, "--query-gpu=name,driver_version,memory.total,compute_cap",
                                  "--format=csv,noheader"]).replace("\n", " | ") if smi else "not found")
    for tool, pick in (("nvcc", -1), ("compute-sanitizer", -1), ("ncu", -1), ("cmake", 0), ("ninja", 0), ("g++", 0)):
        key = f"{tool} (PATH)" if tool in ("cmake", "ninja") else tool  # not the pip package lines above
        path = find_tool(tool)
        if path is None:
            yield f"{key}: not found"
        else:
            text = [t for t in _run([path, "--version"]).splitlines() if t.strip()]
            yield f"{key}: {text[pick] if text else '?'} ({path})"
    try:
        import cupy as cp

        try:
            n = cp.cuda.runtime.getDeviceCount()
            name = cp.cuda.runtime.getDeviceProperties(0)["name"] if n else b""
            name = name.decode() if isinstance(name, bytes) else name
            yield (f"cupy: {cp.__version__} (GPU available: {cp.is_available()}, runtime "
                   f"{cp.cuda.runtime.runtimeGetVersion()}, driver {cp.cuda.runtime.driverGetVersion()}, "
                   f"{n} device(s) {name})")
        except Exception as exc:  # no driver, no device
            yield f"cupy: {cp.__version__} (no usable GPU: {type(exc).__name__}: {exc})"
    except Exception as exc:
        yield f"cupy: not importable ({type(exc).__name__}: {exc})"
    try:
        import torch

        cuda = torch.cuda.is_available()
        cudnn = torch.backends.cudnn.version() if cuda else None
        yield f"torch: {torch.__version__} (CUDA available: {cuda}, cuDNN {cudnn})"
    except Exception as exc:
        yield f"torch: not importable ({type(exc).__name__}: {exc})"


def env_report() -> list[str]:
    return list(env_lines())


# --------------------------------------------------------------------------- build requirements


def build_requires(pyproject: Path) -> list[str]:
    text = pyproject.read_text()
    try:
        import tomllib

        return list(tomllib.loads(text)["build-system"]["requires"])
    except ImportError:  # Python 3.10
        m = re.search(r"^\[build-system\][^\[]*?requires\s*=\s*\[(.*?)\]", text, re.S | re.M)
        return re.findall(r"\"([^\"]+)\"", m.group(1)) if m else []


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:4])


def satisfied(req: str) -> bool:
    """Whether requirement ``req`` (``name`` or ``name>=x``, …) is installed in this Python."""
    try:
        from packaging.requirements import Requirement

        r = Requirement(req)
        have = _version(r.name)
        return have is not None and (not r.specifier or r.specifier.contains(have, prereleases=True))
    except ImportError:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=)?\s*([0-9][^,;\s]*)?", req)
        have = _version(m.group(1)) if m else None
        return have is not None and (not m.group(3) or _vtuple(have) >= _vtuple(m.group(3)))


def missing_build_deps(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    return [r for r in build_requires(pyproject) if not satisfied(r)]


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="device_summary.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("env", help="print the versions of what the device check relies on")
    p = sub.add_parser("missing-build-deps", help="print the build requirements that are missing or too old")
    p.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    p = sub.add_parser("summary", help="write RESULTS/summary.md")
    p.add_argument("--records", type=Path, required=True)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--gpu", default="")
    p.add_argument("--driver", default="")
    p.add_argument("--memory", default="")
    p.add_argument("--folder", default="", help="where to commit the folder (docs/results/gpu/<date>-<gpu>)")
    p.add_argument("--planned", default="", help="comma-separated names of every step of the check")
    p.add_argument("--date", default="")
    p.add_argument("--print", action="store_true", help="also print summary.md")
    args = ap.parse_args(argv)
    if args.cmd == "env":
        for line in env_lines():  # one at a time: a step killed at its limit keeps what it printed
            print(line, flush=True)
    elif args.cmd == "missing-build-deps":
        for r in missing_build_deps(args.pyproject):
            print(r)
    else:
        planned = [n for n in args.planned.split(",") if n]
        _, text = write_summary(args.records, args.results, gpu=args.gpu, driver=args.driver, memory=args.memory,
                                folder=args.folder, planned=planned, date=args.date)
        if args.print:
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
