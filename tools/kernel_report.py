#!/usr/bin/env python3
"""Static kernel report: registers, spills, shared memory and occupancy of every kernel.

Compiles kernels/magma_wino.cu with ``nvcc -Xptxas -v`` for each architecture (default
sm_80 and sm_90), parses ptxas's resource usage per kernel instantiation, computes the
theoretical occupancy (resident warps per SM / maximum warps) and prints a table.  Exits
with status 1 if any kernel spills registers: zero spills is the project's rule.

Usage:  python tools/kernel_report.py [--arch 80 --arch 90] [--json FILE] [--nvcc PATH]
(also reachable as ``magma-wino info --kernels`` from a source checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Per-SM limits (CUDA occupancy calculator): sm_80 (A100) and sm_90 (H100/H200).
ARCH_LIMITS = {
    "80": {"regs": 65536, "smem": 167936, "warps": 64, "blocks": 32, "reg_unit": 256},
    "90": {"regs": 65536, "smem": 233472, "warps": 64, "blocks": 32, "reg_unit": 256},
}

_ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>sm_\d+)'")
_SPILL = re.compile(r"(?P<frame>\d+) bytes stack frame, (?P<st>\d+) bytes spill stores, (?P<ld>\d+) bytes spill loads")
_USED = re.compile(r"Used (?P<regs>\d+) registers(?:.*?(?P<smem>\d+) bytes smem)?")


def _demangle(names: list[str], nvcc: str) -> dict[str, str]:
    filt = shutil.which("cu++filt", path=str(Path(nvcc).parent)) or shutil.which("cu++filt") or shutil.which("c++filt")
    if not filt or not names:
        return {n: n for n in names}
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def _short(name: str) -> str:
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\(.*\)$", "", name)
    return name.replace("mw::", "")


def _launch_shape(name: str) -> tuple[int, int]:
    """(threads per block, dynamic shared memory bytes) of a kernel, from its template
    arguments: ptxas reports only static shared memory, and the products use dynamic."""
    size = 8 if "<double" in name else 4
    if (m := re.search(r"gemm_batched_kernel<\w+, GemmConfig<(\d+), (\d+), (\d+), (\d+), (\d+)>", name)):
        dx, dy, bm, bn, bk = map(int, m.groups())
        return dx * dy, bk * (bm + bn) * size
    if (m := re.search(r"spmm_batched_kernel<\w+, (\d+), (\d+), (\d+), (\d+), (\d+)>", name)):
        dx, dy, _bm, _bn, chunk = map(int, m.groups())
        return dx * dy, chunk * (size + 4)
    return 128, 0  # the transform kernels: kTransformThreads, no shared memory


def occupancy(arch: str, regs: int, smem: int, threads: int) -> float:
    lim = ARCH_LIMITS.get(arch, ARCH_LIMITS["90"])
    warps = (threads + 31) // 32
    regs_per_warp = ((max(regs, 1) * 32 + lim["reg_unit"] - 1) // lim["reg_unit"]) * lim["reg_unit"]
    by_regs = lim["regs"] // (regs_per_warp * warps)
    by_smem = lim["smem"] // smem if smem else lim["blocks"]
    by_warps = lim["warps"] // warps
    blocks = max(0, min(by_regs, by_smem, by_warps, lim["blocks"]))
    return blocks * warps / lim["warps"]


def compile_report(archs: list[str], nvcc: str, source: Path) -> list[dict]:
    gen = Path(tempfile.mkdtemp(prefix="mw_report_"))
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_coefficients.py"), str(gen / "mw_coefficients.h")], check=True)
    rows: list[dict] = []
    for arch in archs:
        cmd = [nvcc, "-std=c++17", f"-arch=sm_{arch}", "-Xptxas", "-v", "-c", str(source), "-o", os.devnull,
               f"-I{ROOT / 'kernels'}", f"-I{ROOT / 'kernels' / 'include'}", f"-I{gen}",
               f'-DMW_CUDA_ARCH_STR="sm_{arch}"']
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"nvcc failed for sm_{arch}")
        current: dict | None = None
        for line in proc.stderr.splitlines():
            if (m := _ENTRY.search(line)):
                current = {"arch": arch, "mangled": m.group("name"), "regs": 0, "smem": 0,
                           "stack": 0, "spill_stores": 0, "spill_loads": 0}
                rows.append(current)
            elif current is not None and (m := _SPILL.search(line)):
                current.update(stack=int(m.group("frame")), spill_stores=int(m.group("st")),
                               spill_loads=int(m.group("ld")))
            elif current is not None and (m := _USED.search(line)):
                current["regs"] = int(m.group("regs"))
                current["smem"] = int(m.group("smem") or 0)
    names = _demangle(sorted({r["mangled"] for r in rows}), nvcc)
    for r in rows:
        r["kernel"] = _short(names[r["mangled"]])
        r["threads"], r["dynamic_smem"] = _launch_shape(r["kernel"])
        r["occupancy"] = round(occupancy(r["arch"], r["regs"], r["smem"] + r["dynamic_smem"], r["threads"]), 3)
    return rows


def format_rows(rows: list[dict]) -> str:
    head = f"{'arch':>5} {'regs':>4} {'spill':>5} {'stack':>5} {'smem':>6} {'dsmem':>6} {'thr':>4} {'occ':>5}  kernel"
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r["arch"], r["kernel"])):
        spill = r["spill_stores"] + r["spill_loads"]
        lines.append(f"sm_{r['arch']:>2} {r['regs']:>4} {spill:>5} {r['stack']:>5} {r['smem']:>6} {r['dynamic_smem']:>6} "
                     f"{r['threads']:>4} {r['occupancy']:>5.2f}  {r['kernel']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", help="SM version, e.g. 80 (repeatable; default 80 and 90)")
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--json", help="write the rows as JSON to this file")
    ap.add_argument("--source", default=str(ROOT / "kernels" / "magma_wino.cu"))
    args = ap.parse_args(argv)
    if not Path(args.nvcc).exists():
        print(f"nvcc not found ({args.nvcc}): no kernel report", file=sys.stderr)
        return 2
    rows = compile_report(args.arch or ["80", "90"], args.nvcc, Path(args.source))
    print(format_rows(rows))
    spilling = [r for r in rows if r["spill_stores"] or r["spill_loads"]]
    print(f"\n{len(rows)} kernel instantiations, {len(spilling)} with register spills")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if spilling else 0


if __name__ == "__main__":
    sys.exit(main())
