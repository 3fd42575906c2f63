#!/usr/bin/env python3
"""Mutation test of the kernel test suites: plant known kernel bugs, check a suite catches each.

Each mutant in :data:`MUTANTS` is one exact text replacement in a kernel source (a bug that once
survived both ``magma-wino validate`` and pytest, or a close relative) together with the test
command(s) that must now catch it: pytest node ids and/or ``magma-wino validate --sanitize``.
The tool

1. exports a commit (``git archive``, default HEAD; ``--working-tree`` copies the checkout's
   tracked and untracked, not ignored, files instead) to ``WORK/src``; the live checkout is
   never modified, so commit (or use ``--working-tree``) what you want tested;
2. makes a venv ``WORK/venv`` of its own (``python -m venv`` plus ``pip install`` of numpy, rich,
   pytest, hypothesis and the build requirements scikit-build-core, cython, cython-cmake) and
   installs the copy into it editable with the emulator only:
   ``MW_CUDA=OFF pip install --no-build-isolation --no-deps -e WORK/src`` (about a minute the
   first time; the build directory ``WORK/src/build/`` is kept, so each mutant recompiles
   only the kernels, ~20 s; ``validate --sanitize`` builds ``WORK/src/build/asan``);
3. runs every catching command on the unmutated copy (the baseline: all must pass), then for
   each mutant applies its replacement, rebuilds, runs its commands (each must fail: non-zero
   exit status, a crash counts) and restores the file;
4. prints a table (``--markdown FILE`` also writes it as Markdown).

Usage::

    python tools/mutation_test.py                 # every mutant, HEAD; ~15 minutes on 2 cores
    python tools/mutation_test.py --only gemm-batch-offset --working-tree --keep
    python tools/mutation_test.py --list

Exit status 0 when the baseline passes and every mutant is caught, 1 otherwise.  It is a
tool, not part of CI.  ``WORK`` defaults to ``$TMPDIR/mw-mutation``; ``--keep`` leaves it (a
later run reuses its venv and build directory).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FT = "tests/test_fused.py::"
KT = "tests/test_kernels_emulator.py::"
AT = "tests/test_kernels_adjoint.py::"
SANITIZE = ("magma-wino validate --sanitize", ["-m", "magma_wino.cli.validate", "--sanitize"])


def pytest_cmd(*tests: str) -> tuple[str, list[str]]:
    label = "pytest " + " ".join(t.replace(KT, "…::") for t in tests)
    return label, ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]


@dataclass
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    catch: list[tuple[str, list[str]]]
    what: str


MUTANTS = [
    Mutant(
        "gemm-a-row-bound", "kernels/gemm_batched.cuh",
        "      if (gr < m && gc < k)\n        v = load_vec<T, VEC>(A +",
        "      if (gr <= m && gc < k)\n        v = load_vec<T, VEC>(A +",
        [SANITIZE],
        "A-tile staging bound `gr < m` → `gr <= m`: reads one row past A, results unchanged",
    ),
    Mutant(
        "gemm-a-element-copy-bound", "kernels/gemm_batched.cuh",
        "const bool valid = gr < m && gc + i < k;",
        "const bool valid = gr <= m && gc + i < k;",
        [SANITIZE],
        "bound of the element-wise A copies (unaligned rows) `gr < m` → `gr <= m`: one row past A",
    ),
    Mutant(
        "gemm-b-copy-column-bound", "kernels/gemm_batched.cuh",
        "const bool valid = gr < k && gc < n;",
        "const bool valid = gr < k;",
        [SANITIZE],
        "column bound of the B cp.async copies dropped: reads past B's rows (the zero-filled A hides it)",
    ),
    Mutant(
        "gemm-alignment-check", "kernels/gemm_batched.cuh",
        "const bool aligned = k % V == 0 && n % V == 0 && reinterpret_cast<uintptr_t>(A) % 16 == 0 &&\n"
        "                       reinterpret_cast<uintptr_t>(B) % 16 == 0;",
        "const bool aligned = k % V == 0 && n % V == 0;",
        [pytest_cmd(KT + "test_gemm_batched_exact_on_misaligned_operands",
                    KT + "test_plan_phases_on_misaligned_views_equal_aligned_bitwise"), SANITIZE],
        "16-byte alignment check of the vector-load path removed",
    ),
    Mutant(
        "spmm-int-chunk-start", "kernels/spmm_batched.cuh",
        "  for (long long cs_wide = blk_lo; cs_wide < blk_hi; cs_wide += NNZ_CHUNK) {\n"
        "    const int cs = static_cast<int>(cs_wide);\n",
        "  for (int cs = blk_lo; cs < blk_hi; cs += NNZ_CHUNK) {\n",
        [pytest_cmd(KT + "test_spmm_batched_exact_with_nonzero_offsets_ending_at_int_max"), SANITIZE],
        "SpMM chunk start `int` instead of 64-bit: overflows when nnz ends near 2^31",
    ),
    Mutant(
        "gemm-batch-offset", "kernels/gemm_batched.cuh",
        "C + row_off * n, static_cast<long long>(m) * n, b0);",
        "C + row_off * n, static_cast<long long>(m) * n, 0);",
        [pytest_cmd(KT + "test_gemm_batched_exact_in_the_second_batch_chunk")],
        "`batch_offset` dropped from the GEMM grid chunking (batch > 65,535)",
    ),
    Mutant(
        "gemm-fp64-float-accumulator", "kernels/gemm_batched.cuh",
        "  T acc[THR_M][THR_N];\n", "  float acc[THR_M][THR_N];\n",
        [pytest_cmd(KT + "test_gemm_batched_fp64_on_non_integer_data_is_fp64_accurate")],
        "float accumulator in the fp64 GEMM (exact on the integer tests)",
    ),
    Mutant(
        "gemm-row-chunk-offset", "kernels/gemm_batched.cuh",
        "const long long row_off = static_cast<long long>(rb) * Cfg::BLK_M;",
        "const long long row_off = 0;",
        [pytest_cmd(KT + "test_gemm_batched_exact_in_the_second_row_block_chunk")],
        "row offset dropped from the GEMM grid chunking (more than 65,535 row blocks)",
    ),
    Mutant(
        "spmm-batch-offset", "kernels/spmm_batched.cuh",
        "rows, cols, n, nnz, row_ptr, col_idx, values, B, C, rb, b0);",
        "rows, cols, n, nnz, row_ptr, col_idx, values, B, C, rb, 0);",
        [pytest_cmd(KT + "test_spmm_batched_exact_in_the_second_batch_chunk")],
        "`batch_offset` dropped from the SpMM grid chunking (batch > 65,535)",
    ),
    Mutant(
        "spmm-row-block-offset", "kernels/spmm_batched.cuh",
        "rows, cols, n, nnz, row_ptr, col_idx, values, B, C, rb, b0);",
        "rows, cols, n, nnz, row_ptr, col_idx, values, B, C, 0, b0);",
        [pytest_cmd(KT + "test_spmm_batched_exact_in_the_second_row_block_chunk")],
        "row-block offset dropped from the SpMM grid chunking (more than 65,535 row blocks)",
    ),
    Mutant(
        "spmm-fp64-float-accumulator", "kernels/spmm_batched.cuh",
        "acc[i][j] = spmm_fma(v, __ldg(b_row + DIM_X * j), acc[i][j]);",
        "acc[i][j] = static_cast<float>(spmm_fma(v, __ldg(b_row + DIM_X * j), acc[i][j]));",
        [pytest_cmd(KT + "test_spmm_batched_fp64_on_non_integer_data_is_fp64_accurate")],
        "fp64 SpMM accumulator rounded to float at every step (exact on the integer tests)",
    ),
    Mutant(
        "adjoint-first-covering-tile", "kernels/transform_adjoint.cuh",
        "  first = lo <= 0 ? 0 : (lo + m - 1) / m;",
        "  first = lo <= 0 ? 0 : (lo + m - 1) / m + 1;",
        [pytest_cmd(AT + "test_input_transform_adjoint_matches_reference")],
        "the input adjoint's gather skips the first of the tiles whose windows cover an element",
    ),
    Mutant(
        "adjoint-output-clip", "kernels/transform_adjoint.cuh",
        "n1 = min_int(m, Ho - h0),",
        "n1 = min_int(m, Ho - h0 + 1),",
        [pytest_cmd(AT + "test_output_transform_adjoint_matches_reference")],
        "the output adjoint reads one row of dy past the clipped edge of the last tile row",
    ),
    Mutant(
        "fused-last-chunk", "kernels/winograd_fused.cuh",
        "  const int chunks = (g.C + Cfg::kBC - 1) / Cfg::kBC;",
        "  const int chunks = (g.C + Cfg::kBC - 1) / Cfg::kBC - (g.C > 2 * Cfg::kBC ? 1 : 0);",
        [pytest_cmd(FT + "test_fused_is_bitwise_the_three_phase_path")],
        "the fused main loop drops the last channel chunk when there are three or more",
    ),
    Mutant(
        "fused-window-right-edge", "kernels/winograd_fused.cuh",
        "if (w0 + a >= 0 && w0 + a < W) ws.cols[i] |= 1u << a;",
        "if (w0 + a >= 0 && w0 + a < W - 1) ws.cols[i] |= 1u << a;",
        [pytest_cmd(FT + "test_fused_is_bitwise_the_three_phase_path")],
        "the fused window mask drops the input's last column (reads zeros there)",
    ),
    Mutant(
        "fused-epilogue-slab", "kernels/winograd_fused.cuh",
        "      if (q / Cfg::kPositions != s) continue;  // the unit belongs to another slab\n",
        "",
        [pytest_cmd(FT + "test_fused_is_bitwise_the_three_phase_path")],
        "every unit stored in every epilogue slab: one slab's accumulators overwrite another's",
    ),
    Mutant(
        "fused-slab-barrier", "kernels/winograd_fused.cuh",
        "    __syncthreads();  // the slab is read before the next one overwrites it\n",
        "",
        [pytest_cmd(FT + "test_fused_is_bitwise_the_three_phase_path",
                    FT + "test_fused_results_do_not_depend_on_thread_order_or_the_fragment_layout")],
        "the barrier between two epilogue slabs removed: the next slab overwrites M still being read",
    ),
]

#: Packages of the tool's venv: the runtime and test needs of the catching commands, and the
#: build requirements of pyproject.toml (installed, since the build runs without isolation).
VENV_PACKAGES = ["numpy>=1.24", "rich>=13", "pytest>=7.4", "hypothesis>=6.80",
                 "scikit-build-core>=0.10", "cython>=3.0", "cython-cmake>=0.2"]
#: Variables that would point the catching commands at the live checkout's builds.
SCRUB = ("MW_KERNELS_ASAN_EXE", "MW_EMU_ASAN_EXE", "MW_ASAN_BUILD_DIR", "VIRTUAL_ENV", "PYTHONPATH",
         "PYTHONHOME")


@dataclass
class Outcome:
    label: str
    returncode: int
    seconds: float
    evidence: str


@dataclass
class MutantResult:
    mutant: Mutant
    build_ok: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def caught(self) -> bool:
        return self.build_ok and bool(self.outcomes) and all(o.returncode != 0 for o in self.outcomes)


def log(msg: str) -> None:
    print(msg, flush=True)


def child_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MW_CUDA"] = "OFF"
    env["COLUMNS"] = "400"  # pytest's short summary keeps the failure message
    return env


def export_source(src: Path, rev: str, working_tree: bool) -> None:
    """Fresh copy of the sources in src (its build/ directory is kept for incremental builds)."""
    src.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name != "build":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if working_tree:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
        for rel in filter(None, (f.decode() for f in files)):
            source = REPO / rel
            if source.is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, src / rel)
    else:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-xf", "-", "-C", str(src)], input=archive, check=True)


def ensure_venv(venv: Path) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES],
                          capture_output=True, text=True, env=child_env(venv))
    if proc.returncode != 0:
        raise SystemExit(f"pip install into {venv} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def build(src: Path, venv: Path) -> tuple[bool, str]:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-build-isolation",
                           "--no-deps", "-e", str(src)], cwd=src, capture_output=True, text=True,
                          env=child_env(venv))
    out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line)
    return proc.returncode == 0, out


def evidence(out: str, returncode: int) -> str:
    if returncode < 0:
        return f"crashed (signal {-returncode})"
    lines = out.splitlines()
    report = next((ln for ln in lines if "sanitizer report:" in ln or ln.startswith("FAIL ")), None)
    if report:  # magma-wino validate --sanitize: the failed check and its first reported line
        failed = next((ln for ln in lines if ln.startswith("FAILED ")), "")
        text = f"{failed.split()[1] + ': ' if failed else ''}{report.split('sanitizer report:')[-1].strip()}"
        text = re.sub(r" (on address|at pc|at|bp|sp) 0x[0-9a-f]+", "", text)  # addresses vary
        return re.sub(r"\s+", " ", text)[:300]
    for pattern in (r"^FAILED \S+.*", r"^ERROR \S+.*"):
        hit = next((m.group(0) for line in lines if (m := re.match(pattern, line))), None)
        if hit:
            summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (failed|passed)", ln)), "")
            hit = hit.replace(KT, "…::").replace("AssertionError: ", "")
            return re.sub(r"\s+", " ", f"{hit} ({summary})" if summary else hit)[:400]
    fatal = next((ln for ln in lines if "Fatal Python error" in ln or "Segmentation fault" in ln), None)
    if fatal:
        return fatal.strip()[:300]
    tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return f"exit status {returncode}: {tail}"[:300]


def run_command(label: str, argv: list[str], src: Path, venv: Path, timeout: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), *argv], cwd=src, capture_output=True, text=True,
                              env=child_env(venv), timeout=timeout)
        rc, out = proc.returncode, (proc.stdout + proc.stderr).replace(f"{src}/", "")
    except subprocess.TimeoutExpired:
        rc, out = 124, f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    if rc == 0:
        last = next((ln.strip("= ") for ln in reversed(out.splitlines()) if ln.strip()), "")
        return Outcome(label, rc, seconds, last[:300])
    return Outcome(label, rc, seconds, evidence(out, rc))


def apply(src: Path, m: Mutant) -> str:
    path = src / m.file
    text = path.read_text()
    count = text.count(m.original)
    if count != 1:
        raise SystemExit(f"mutant {m.name}: the original text occurs {count} times in {m.file} "
                         "(the source changed: update MUTANTS)")
    path.write_text(text.replace(m.original, m.replacement))
    return text


def table(baseline: list[Outcome], results: list[MutantResult]) -> str:
    rows = ["| mutant | planted bug (file) | catching command | result | evidence |",
            "|---|---|---|---|---|"]
    for o in baseline:
        rows.append(f"| (baseline) | unmutated | `{o.label}` | {'pass' if o.returncode == 0 else 'FAIL'} "
                    f"({o.seconds:.0f} s) | {o.evidence.replace('|', '/')} |")
    for r in results:
        m = r.mutant
        if not r.build_ok:
            rows.append(f"| {m.name} | {m.what} (`{m.file}`) | — | BUILD FAILED | |")
            continue
        for i, o in enumerate(r.outcomes):
            verdict = "caught" if o.returncode != 0 else "**SURVIVED**"
            first = f"{m.name} | {m.what} (`{m.file}`)" if i == 0 else " | "
            rows.append(f"| {first} | `{o.label}` | {verdict} ({o.seconds:.0f} s) | "
                        f"{o.evidence.replace('|', '/')} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="commit to test (git archive), default HEAD")
    ap.add_argument("--working-tree", action="store_true",
                    help="copy the checkout's tracked and untracked (not ignored) files instead of --rev")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mw-mutation",
                    help="work directory (source copy, venv, builds)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per catching command")
    ap.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)

    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.only and len(mutants) != len(set(args.only)):
        ap.error(f"unknown mutant in {args.only}; known: {[m.name for m in MUTANTS]}")
    if args.list:
        for m in mutants:
            log(f"{m.name:30s} {m.file:28s} {m.what}\n{'':30s} caught by: " + "; ".join(lbl for lbl, _ in m.catch))
        return 0

    t_start = time.perf_counter()
    src, venv = args.work / "src", args.work / "venv"
    what = "the working tree" if args.working_tree else args.rev
    log(f"exporting {what} of {REPO} to {src}")
    export_source(src, args.rev, args.working_tree)
    for m in mutants:  # every patch applies before anything is built
        (src / m.file).write_text(apply(src, m))
    ensure_venv(venv)
    log("building the unmutated copy (emulator only)")
    ok, out = build(src, venv)
    if not ok:
        log(out[-4000:])
        return 1

    commands = list(dict.fromkeys((lbl, tuple(a)) for m in mutants for lbl, a in m.catch))
    baseline = []
    for label, cmd in commands:
        log(f"baseline: {label}")
        baseline.append(run_command(label, list(cmd), src, venv, args.timeout))
        log(f"  {'pass' if baseline[-1].returncode == 0 else 'FAIL'} ({baseline[-1].seconds:.0f} s) "
            f"{baseline[-1].evidence}")
    results = []
    if all(o.returncode == 0 for o in baseline):
        for m in mutants:
            log(f"mutant {m.name}: {m.what}")
            original = apply(src, m)
            try:
                ok, out = build(src, venv)
                result = MutantResult(m, ok)
                if not ok:
                    log(out[-3000:])
                for label, cmd in (m.catch if ok else []):
                    o = run_command(label, cmd, src, venv, args.timeout)
                    result.outcomes.append(o)
                    log(f"  {'caught' if o.returncode != 0 else 'SURVIVED'} by {label} ({o.seconds:.0f} s): "
                        f"{o.evidence}")
                results.append(result)
            finally:
                (src / m.file).write_text(original)
    else:
        log("the baseline fails: fix the suites before testing mutants")

    text = table(baseline, results)
    caught = sum(r.caught for r in results)
    summary = (f"{caught} of {len(mutants)} mutants caught; baseline "
               f"{'passes' if all(o.returncode == 0 for o in baseline) else 'FAILS'} "
               f"({(time.perf_counter() - t_start) / 60:.1f} min, {what})")
    log("\n" + text + "\n\n" + summary)
    if args.markdown:
        args.markdown.write_text(text + "\n\n" + summary + "\n")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0 if results and caught == len(mutants) and len(results) == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
