#!/usr/bin/env python3
"""Static kernel report: registers, spills, shared memory and occupancy of every kernel.

Compiles kernels/magma_wino.cu with ``nvcc -Xptxas -v`` for each architecture (default
sm_80 and sm_90), parses ptxas's resource usage per kernel instantiation, computes the
theoretical occupancy (resident warps per SM / maximum warps) and prints a table.  Exits
with status 1 if any kernel spills registers: zero spills is the project's rule.

SASS instruction mix (when ``cuobjdump`` is found: on PATH, next to nvcc, or from the
``nvidia-cuda-cuobjdump`` wheel of the ``dev`` extra): the same source is compiled to a
cubin per architecture, disassembled with ``cuobjdump -sass``, and for every kernel the
*hot loop* is found -- among the innermost loops (a backward branch and the instructions
from its target to it, enclosing no other loop with arithmetic) the one with the most
FMA-class instructions (FFMA, DFMA, HMMA, DMMA, ...), the smallest such on ties; a kernel without a loop doing arithmetic is counted whole
(``scope: function``: one thread's work).  Its opcodes are counted by class: FFMA, DFMA,
HMMA, DMMA, FADD (FADD, DADD), FMUL (FMUL, DMUL), LDS.32/64/128, LDG.32/64/128, LDGSTS,
STS.32/64/128, BAR, other; the loops nested in it (``inner``: per trip) are listed too.
Without cuobjdump the report says so and goes on (same exit status).

The fused layer kernels (kernels/winograd_fused.cuh, ``winograd_fused_2d_kernel<FusedConfig<...>,
FusedMath, T, TS>``) get their own table: the configuration's alias (read from the header),
threads (32 x Warps) and dynamic shared memory (``FusedConfig::shared_bytes()``, computed from
the template arguments), and per warp per channel chunk the hot (chunk) loop's MMA / FFMA /
FADD+FMUL / LDG / LDS / STS counts, the U staging loop's instructions per trip and the
epilogue's output-transform loop (``epilogue``: per (k, tile) pair).

Usage:  python tools/kernel_report.py [--arch 80 --arch 90] [--json FILE] [--nvcc PATH] [--no-sass]
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
from concurrent.futures import ThreadPoolExecutor
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


_TC_PRECISION = {"0": "kTf32", "1": "kTf32x3", "2": "kBf16", "3": "kFp16", "4": "kFp64"}  # TcPrecision (gemm_tc.cuh)
#: FusedMath (winograd_fused.cuh): the values of mw_precision.
_FUSED_MATH = {"0": "kFp32", "1": "kTf32", "2": "kTf32x3", "3": "kBf16", "4": "kFp16", "5": "kFp64"}


def _short(name: str) -> str:
    """A demangled kernel name without ``void``, namespaces and its parameter list.  Template
    arguments may hold parentheses themselves (``(mw::TcPrecision)1``), so the parameter list
    is the balanced group that ends the name."""
    name = re.sub(r"^void ", "", name)
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    name = name.replace("mw::", "")
    name = re.sub(r"\(FusedMath\)(\d+)", lambda m: _FUSED_MATH.get(m[1], m[0]), name)
    return re.sub(r"\(TcPrecision\)(\d+)", lambda m: _TC_PRECISION.get(m[1], m[0]), name)


_FUSED = re.compile(r"winograd_fused_2d_kernel<FusedConfig<(?P<args>\d+, \d+, \d+, \d+, \d+, \d+, "
                    r"GemmShape<\d+, \d+, \d+>, \d+, \d+, (?:true|false))>")


def fused_config(args: str) -> dict:
    """The geometry of a ``FusedConfig<M, BK, BP, BC, Warps, ElementBytes, GemmShape<im, in, ik>,
    PadA, PadB, Prefetch>`` (kernels/winograd_fused.cuh) from its argument list as cu++filt prints
    it, with ``FusedConfig::shared_bytes()``: two stages of alpha² position slices, each U
    [BK][BC + PadA] then V [BC][BP + PadB], or the epilogue's M slab [alpha²][im][BP + 4] of
    accumulators (double for 8-byte operands, else float) if larger, plus 32 bytes of alignment."""
    nums = [int(v) for v in re.findall(r"\d+", args)]
    m, bk, bp, bc, warps, elem, im, _in, _ik, pad_a, pad_b = nums
    pos = (m + 2) ** 2
    acc = 8 if elem == 8 else 4
    stages = elem * 2 * pos * (bk * (bc + pad_a) + bc * (bp + pad_b))
    epilogue = acc * pos * im * (bp + 4)
    return {"m": m, "bk": bk, "bp": bp, "bc": bc, "warps": warps, "threads": 32 * warps, "element_bytes": elem,
            "positions": pos, "prefetch": args.endswith("true"), "shared_bytes": max(stages, epilogue) + 32}


def fused_aliases(header: Path = ROOT / "kernels" / "winograd_fused.cuh") -> dict[str, str]:
    """{FusedConfig argument list: its alias} from the header's ``using Name = FusedConfig<...>;``
    lines (the report names a fused row by its configuration's alias, as the plans do)."""
    if not header.is_file():
        return {}
    text = re.sub(r"\s+", " ", header.read_text())
    out = {}
    for m in re.finditer(r"using (\w+) = FusedConfig<(.*?)>;", text):
        args = re.sub(r"\s*,\s*", ", ", m[2].strip())
        out[args] = m[1]
    return out


def _launch_shape(name: str) -> tuple[int, int]:
    """(threads per block, dynamic shared memory bytes) of a kernel, from its template
    arguments: ptxas reports only static shared memory, and the products use dynamic."""
    size = 8 if "<double" in name else 4
    if (m := _FUSED.search(name)):
        # FusedConfig::shared_bytes(); kThreads = 32 x Warps (one block per SM: launch bounds)
        cfg = fused_config(m.group("args"))
        return cfg["threads"], cfg["shared_bytes"]
    if (m := re.search(r"gemm_batched_kernel<\w+, GemmConfig<(\d+), (\d+), (\d+), (\d+), (\d+)>", name)):
        # GemmConfig::shared_bytes<T>(): kStages = 2 stages of the A slice, stored transposed with
        # rows padded by kPadA = 4 elements (BLK_K x (BLK_M + 4)), and of the B slice (BLK_K x BLK_N).
        dx, dy, bm, bn, bk = map(int, m.groups())
        return dx * dy, 2 * bk * (bm + 4 + bn) * size
    # (the layer's kernels carry more template arguments after the tile: vector width, path flags)
    if (m := re.search(r"spmm_batched_kernel<\w+, (\d+), (\d+), (\d+), (\d+), (\d+)[,>]", name)):
        dx, dy, _bm, _bn, chunk = map(int, m.groups())
        return dx * dy, chunk * (size + 4)
    # (the block-sparse kernels, bsr_tc_batched.cuh, wrap the same layouts in BsrTcConfig<...>)
    if (m := re.search(r"(?:gemm_tc_kernel<\w+, |bsr_tc_batched_kernel<\w+, BsrTcConfig<)"
                       r"GemmTcConfig(16|64)?<GemmShape<(\d+), (\d+), (\d+)>, "
                       r"GemmShape<(\d+), (\d+), \d+>, (\d+)>", name)):
        # GemmTcLayout::shared_bytes(): the stages of padded A (kM x kK+padA) and B (kK x kN+padB)
        # slices -- GemmTcConfig: float, pads 4 / 8; GemmTcConfig16: 2-byte elements, pads 8 / 8;
        # GemmTcConfig64: double, pads 4 / 4 -- or the padded C tile of accumulators (kM x kN+4;
        # float, double for GemmTcConfig64) if larger, plus 32 bytes of alignment.
        elem, pad_a, pad_b, acc = {None: (4, 4, 8, 4), "16": (2, 8, 8, 4), "64": (8, 4, 4, 8)}[m.group(1)]
        bm, bn, bk, wm, wn, stages = map(int, m.groups()[1:])
        stage_bytes = elem * (bm * (bk + pad_a) + bk * (bn + pad_b))
        return 32 * (bm // wm) * (bn // wn), max(stages * stage_bytes, acc * bm * (bn + 4)) + 32
    if (m := re.search(r"sp24_tc_kernel<\w+, Sp24TcConfig<(\d+), (\d+), (\d+), (\d+)>", name)):
        # Sp24TcConfig::shared_bytes() (sp24_tc_batched.cuh): kM / kWarpM x 2 warps; per stage the
        # values (kM x kK/2 + pad: 16-bit 40, float 20), kM / 16 x 32 metadata words and B
        # (kK x 72), kK = 64 for 16-bit, 32 for float.
        elem, stages, bm, wm = map(int, m.groups())
        kk, lda = (64, 40) if elem == 2 else (32, 20)
        return 32 * (bm // wm) * 2, stages * (bm * lda * elem + bm // 16 * 32 * 4 + kk * 72 * elem)
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


# --------------------------------------------------------------------------- SASS mix

#: Instruction classes counted in a hot loop, in report order.
MIX_CLASSES = ("FFMA", "DFMA", "HMMA", "DMMA", "FADD", "FMUL", "LDS.32", "LDS.64", "LDS.128", "LDG.32", "LDG.64",
               "LDG.128", "LDGSTS", "STS.32", "STS.64", "STS.128", "BAR", "other")
#: Opcodes that count as the loop's arithmetic when the hot loop is chosen.
FMA_OPS = ("FFMA", "DFMA", "HMMA", "DMMA", "HGMMA", "IMMA")

_FUNC = re.compile(r"^\s*Function\s*:\s*(?P<name>\S+)")
# "/*0590*/   @!P0 LDG.E.128.CONSTANT R12, desc[UR10][R42.64] ;"
_INSN = re.compile(r"^\s*/\*(?P<addr>[0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?(?P<op>[A-Z][A-Z0-9_.]*)"
                   r"(?P<args>[^;]*);")
_TARGET = re.compile(r"0x(?P<t>[0-9a-f]+)")


def find_cuobjdump(nvcc: str | None = None) -> str | None:
    """cuobjdump: on PATH, next to nvcc, or in the nvidia-cuda-cuobjdump wheel (site-packages
    ``nvidia/cu13/bin``; older wheels: ``nvidia/cuda_cuobjdump/bin``)."""
    if (found := shutil.which("cuobjdump")):
        return found
    if nvcc and (found := shutil.which("cuobjdump", path=str(Path(nvcc).parent))):
        return found
    for base in sys.path:
        for sub in ("nvidia/cu13/bin", "nvidia/cuda_cuobjdump/bin"):
            cand = Path(base or ".") / sub / "cuobjdump"
            if cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
    return None


def _width_class(op: str, base: str) -> str:
    """LDS/LDG/STS by access width: .64 / .128 suffixes, 32 bits otherwise (.U8 etc. too)."""
    parts = op.split(".")
    width = "128" if "128" in parts else "64" if "64" in parts else "32"
    return f"{base}.{width}"


def classify(op: str) -> str:
    """The mix class of one SASS opcode (with its modifiers), e.g. 'LDG.E.128.CONSTANT' -> 'LDG.128'."""
    head = op.split(".")[0]
    if head in ("FFMA", "DFMA", "DMMA"):
        return head
    if head in ("HMMA", "HGMMA"):
        return "HMMA"
    if head in ("FADD", "DADD"):  # the transforms' additions (FP32 / FP64 pipe)
        return "FADD"
    if head in ("FMUL", "DMUL"):
        return "FMUL"
    if head in ("LDS", "LDG", "STS"):
        return _width_class(op, head)
    if head == "LDGSTS":
        return "LDGSTS"
    if head == "BAR":
        return "BAR"
    return "other"


def parse_sass(text: str) -> dict[str, list[tuple[int, str, str]]]:
    """``cuobjdump -sass`` output -> {mangled kernel name: [(address, opcode, operands)]}."""
    funcs: dict[str, list[tuple[int, str, str]]] = {}
    current: list | None = None
    for line in text.splitlines():
        if (m := _FUNC.match(line)):
            current = funcs.setdefault(m.group("name"), [])
        elif current is not None and (m := _INSN.match(line)):
            current.append((int(m.group("addr"), 16), m.group("op"), m.group("args").strip()))
    return funcs


def _count(insns: list[tuple[int, str, str]]) -> dict[str, int]:
    mix = dict.fromkeys(MIX_CLASSES, 0)
    for _a, op, _args in insns:
        mix[classify(op)] += 1
    return mix


def hot_loop(insns: list[tuple[int, str, str]]) -> dict:
    """The hot loop of one kernel's instructions and its mix (see the module docstring).

    Returns {"scope": "loop"|"function", "start", "end" (byte addresses, inclusive),
    "instructions", "mix": {class: count}}: counts per iteration of the loop (per thread
    for scope "function").  The self-branch that pads the end of every kernel is no loop."""
    every = _loops(insns)
    loops = [lp for lp in every if lp[0] > 0]
    # innermost: a loop with arithmetic that encloses no other such loop (the per-nonzero
    # loop of the SpMM, not the chunk loop around it)
    loops = [lp for lp in loops if not any(o is not lp and lp[2] <= o[2] and o[3] <= lp[3] for o in loops)]
    inner: list[dict] = []
    if loops:
        fmas, _neg, start, end, body = max(loops)
        scope = "loop"
        # loops inside it without arithmetic (the fused kernels' U staging): their bodies run
        # once per trip, the hot loop's counts hold them once
        inner = [{"start": lp[2], "end": lp[3], "instructions": len(lp[4]), "mix": _count(lp[4])}
                 for lp in sorted(every, key=lambda lp: lp[2])
                 if start <= lp[2] and lp[3] <= end and (lp[2], lp[3]) != (start, end)]
    else:
        body = [i for i in insns if i[1] != "BRA" or not (t := _TARGET.search(i[2])) or int(t.group("t"), 16) != i[0]]
        start, end, scope = (body[0][0], body[-1][0], "function") if body else (0, 0, "function")
    return {"scope": scope, "start": start, "end": end, "instructions": len(body), "mix": _count(body), "inner": inner}


def _loops(insns: list[tuple[int, str, str]]) -> list[tuple[int, int, int, int, list]]:
    """Every backward branch as a loop: (FMA-class count, -instructions, start, end, body)."""
    loops = []
    for addr, op, args in insns:
        if op.split(".")[0] in ("BRA", "JMP") and (t := _TARGET.search(args)) and int(t.group("t"), 16) < addr:
            start = int(t.group("t"), 16)
            body = [i for i in insns if start <= i[0] <= addr]
            fmas = sum(1 for i in body if i[1].split(".")[0] in FMA_OPS)
            loops.append((fmas, -len(body), start, addr, body))
    return loops


#: Classes of the transforms' arithmetic (an epilogue loop is the one with the most of them).
_TRANSFORM_OPS = ("FFMA", "DFMA", "FADD", "FMUL")


def epilogue_loop(insns: list[tuple[int, str, str]], after: int) -> dict | None:
    """The loop after address ``after`` with the most transform arithmetic (FFMA, FADD, FMUL
    and the double ones): in a fused kernel, the output transform of one (k, tile) pair per
    iteration.  {"start", "end", "instructions", "mix"} or None."""
    best = None
    for _f, _n, start, end, body in _loops(insns):
        if start <= after:
            continue
        mix = _count(body)
        ops = sum(mix[c] for c in _TRANSFORM_OPS)
        if ops and (best is None or ops > best[0]):
            best = (ops, {"start": start, "end": end, "instructions": len(body), "mix": mix})
    return best[1] if best else None


def sass_mix(sass_text: str) -> dict[str, dict]:
    """{mangled kernel name: hot_loop(...)} of every kernel in a ``cuobjdump -sass`` listing."""
    out = {}
    for name, insns in parse_sass(sass_text).items():
        out[name] = hot_loop(insns)
        if "winograd_fused" in name and out[name]["scope"] == "loop":
            out[name]["epilogue"] = epilogue_loop(insns, out[name]["end"])
    return out


def _compile_arch(arch: str, nvcc: str, cuobjdump: str | None, source: Path, gen: Path) -> tuple[list[dict], dict]:
    """One nvcc run for one architecture: ptxas's resource usage (``-Xptxas -v``) of every
    kernel, and with ``cuobjdump`` the SASS mix of the same compilation (its cubin: ``-cubin``
    runs the same ptxas, without the host compilation ``-c`` adds).  Returns (rows, mixes)."""
    out = str(gen / f"mw_sm{arch}.cubin") if cuobjdump else os.devnull
    cmd = [nvcc, "-std=c++17", f"-arch=sm_{arch}", "-Xptxas", "-v", "-cubin" if cuobjdump else "-c",
           str(source), "-o", out, f"-I{ROOT / 'kernels'}", f"-I{ROOT / 'kernels' / 'include'}", f"-I{gen}",
           f'-DMW_CUDA_ARCH_STR="sm_{arch}"']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"nvcc failed for sm_{arch}")
    rows: list[dict] = []
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
    mixes: dict = {}
    if cuobjdump:
        dump = subprocess.run([cuobjdump, "-sass", out], capture_output=True, text=True)
        if dump.returncode != 0:
            sys.stderr.write(dump.stderr)
        else:
            mixes = sass_mix(dump.stdout)
    return rows, mixes


def compile_report(archs: list[str], nvcc: str, source: Path, sass: bool = False) -> list[dict]:
    """ptxas facts per kernel instantiation; with ``sass`` (and cuobjdump found) each row also
    gets ``sass``: its hot loop's instruction mix (:func:`hot_loop`), or None if absent.  The
    architectures compile concurrently (one nvcc each, up to the number of cores)."""
    gen = Path(tempfile.mkdtemp(prefix="mw_report_"))
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_coefficients.py"), str(gen / "mw_coefficients.h")], check=True)
    cuobjdump = find_cuobjdump(nvcc) if sass else None
    workers = max(1, min(len(archs), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda a: _compile_arch(a, nvcc, cuobjdump, source, gen), archs))
    rows: list[dict] = [r for arch_rows, _ in results for r in arch_rows]
    mixes = {arch: m for arch, (_, m) in zip(archs, results)}
    names = _demangle(sorted({r["mangled"] for r in rows}), nvcc)
    aliases = fused_aliases()
    for r in rows:
        r["kernel"] = _short(names[r["mangled"]])
        r["threads"], r["dynamic_smem"] = _launch_shape(r["kernel"])
        if (m := _FUSED.search(r["kernel"])):  # the fused layer: its configuration by name and shape
            r["fused"] = dict(fused_config(m.group("args")), config=aliases.get(m.group("args")))
        r["occupancy"] = round(occupancy(r["arch"], r["regs"], r["smem"] + r["dynamic_smem"], r["threads"]), 3)
        if cuobjdump:
            r["sass"] = mixes.get(r["arch"], {}).get(r["mangled"])
    return rows


#: Columns of the instruction-mix table (the classes, a few merged for width).
_MIX_COLS = ("FFMA", "DFMA", "HMMA", "DMMA", "FADD", "FMUL", "LDS.32", "LDS.64", "LDS.128", "LDG", "LDGSTS", "STS", "BAR", "other")


def _mix_cells(mix: dict[str, int]) -> list[int]:
    merged = dict(mix, LDG=sum(mix[k] for k in ("LDG.32", "LDG.64", "LDG.128")),
                  STS=sum(mix[k] for k in ("STS.32", "STS.64", "STS.128")))
    return [merged[c] for c in _MIX_COLS]


def format_mix(rows: list[dict]) -> str:
    """The hot-loop instruction mix per kernel (counts per loop iteration; scope 'function':
    the whole kernel, one thread's work)."""
    head = f"{'arch':>5} {'scope':>5} " + " ".join(f"{c:>7}" for c in _MIX_COLS) + "  kernel"
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r["arch"], r["kernel"])):
        if not r.get("sass"):
            continue
        sc = "loop" if r["sass"]["scope"] == "loop" else "func"
        lines.append(f"sm_{r['arch']:>2} {sc:>5} " + " ".join(f"{v:>7}" for v in _mix_cells(r["sass"]["mix"]))
                     + f"  {r['kernel']}")
    return "\n".join(lines)


def format_fused(rows: list[dict]) -> str:
    """The fused layer kernels: configuration, registers, spills, shared memory (dynamic:
    FusedConfig::shared_bytes()), and per warp per channel chunk the hot loop's tensor / FMA
    instructions, the transforms' FADD + FMUL, global and shared-memory accesses, all
    instructions; the U staging loop inside it (per trip) and the epilogue's output-transform
    loop (per (k, tile) pair)."""
    head = (f"{'arch':>5} {'regs':>4} {'spill':>5} {'dsmem':>6} {'thr':>4} {'MMA':>4} {'FFMA':>4} {'FADD+MUL':>8} "
            f"{'LDG':>4} {'LDS':>4} {'STS':>4} {'all':>5} {'stageU':>6} {'epi':>5}  config, math")
    lines = [head, "-" * len(head)]
    for r in sorted((r for r in rows if r.get("fused")), key=lambda r: (r["arch"], r["kernel"])):
        spill = r["spill_stores"] + r["spill_loads"]
        sass = r.get("sass") or {}
        mix = sass.get("mix") or {}
        cells = ["-"] * 8
        if mix:
            ldg = sum(mix.get(f"LDG.{w}", 0) for w in ("32", "64", "128"))
            lds = sum(mix.get(f"LDS.{w}", 0) for w in ("32", "64", "128"))
            sts = sum(mix.get(f"STS.{w}", 0) for w in ("32", "64", "128"))
            inner = sass.get("inner") or []
            epi = sass.get("epilogue") or {}
            cells = [mix["HMMA"] + mix["DMMA"], mix["FFMA"] + mix["DFMA"], mix["FADD"] + mix["FMUL"], ldg, lds, sts,
                     sass["instructions"], inner[0]["instructions"] if inner else "-"]
            cells.append(epi.get("instructions", "-"))
        else:
            cells.append("-")
        math = re.search(r">, (k\w+|\(FusedMath\)\d+)", r["kernel"])
        lines.append(f"sm_{r['arch']:>2} {r['regs']:>4} {spill:>5} {r['dynamic_smem']:>6} {r['threads']:>4} "
                     + " ".join(f"{c:>{w}}" for c, w in zip(cells, (4, 4, 8, 4, 4, 4, 5, 6, 5)))
                     + f"  {r['fused'].get('config') or r['kernel']}, {math[1] if math else '?'}")
    return "\n".join(lines)


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
    ap.add_argument("--no-sass", action="store_true", help="skip the SASS instruction mix (cuobjdump)")
    args = ap.parse_args(argv)
    if not Path(args.nvcc).exists():
        print(f"nvcc not found ({args.nvcc}): no kernel report", file=sys.stderr)
        return 2
    want_sass = not args.no_sass
    if want_sass and not find_cuobjdump(args.nvcc):
        print("cuobjdump not found (pip install nvidia-cuda-cuobjdump, or the dev extra): "
              "no SASS instruction mix", file=sys.stderr)
        want_sass = False
    rows = compile_report(args.arch or ["80", "90"], args.nvcc, Path(args.source), sass=want_sass)
    print(format_rows(rows))
    if want_sass:
        print("\nHot-loop SASS instruction mix (warp instructions per loop iteration; "
              "func = whole kernel, one thread's work):")
        print(format_mix(rows))
    if any(r.get("fused") for r in rows):
        print("\nFused layer kernels (winograd_fused.cuh; per warp per channel chunk; stageU: the U staging "
              "loop's instructions per trip, epi: the output transform's per (k, tile) pair):")
        print(format_fused(rows))
    spilling = [r for r in rows if r["spill_stores"] or r["spill_loads"]]
    print(f"\n{len(rows)} kernel instantiations, {len(spilling)} with register spills")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if spilling else 0


if __name__ == "__main__":
    sys.exit(main())
