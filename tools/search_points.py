#!/usr/bin/env python3
"""Search interpolation points of F(m, r) for float32 accuracy (docs/accuracy.md, "Points").

Two scores per candidate point set (∞ is always added, as in ``magma_wino.transforms``):

1. the RMS growth factor β₂ (``magma_wino.accuracy.growth_factor``), which predicts the float32
   error of a 2D layer to within ~2× (``rel_err ≈ u·β₂²·√(L + C/2)/r``) — cheap, so it screens
   every candidate (computed here in float64 from the Vandermonde matrices: β₂ is invariant
   under the per-position rescaling, so the primitive-integer normalisation is not needed);
2. the measured float32 ``rel_err`` of the NumPy reference against the float64 direct
   convolution on a few VGG-16 shapes and seeds — for the ``--top`` candidates by β₂ only.

Candidates (Barabasz, Anderson, Soodhalter, Gregg 2018, arXiv:1803.10986: points in p, 1/p
pairs, of both signs, small numerators and denominators): every symmetric set {0 (when α − 1
is odd), ±p₁, ±p₂, …} with p = n/d, 1 ≤ n, d ≤ ``--max-nd``, p ≤ ``--max-mag``; then
``--local`` coordinate-descent restarts over the same pool with both signs free (asymmetric
sets).  Example (the F(8,3) defaults of transforms.DEFAULT_POINTS came from this):

    python tools/search_points.py --tile 8,3 --top 12 --local 10

Prints one row per measured candidate, best first; ``--json FILE`` writes them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from fractions import Fraction

import numpy as np


def beta2(points, m: int, r: int) -> float:
    """β₂ of F(m, r) with finite ``points`` and ∞, in float64 (inf for a singular set)."""
    p = np.array([float(v) for v in points])
    alpha = m + r - 1

    def e(k: int) -> np.ndarray:
        return np.vstack([p[:, None] ** np.arange(k)[None, :], np.eye(k)[-1][None, :]])

    try:
        bt = np.linalg.inv(e(alpha)).T
    except np.linalg.LinAlgError:
        return float("inf")
    g, at = e(r), e(m).T
    v = float(np.sqrt(((at**2) @ ((g**2).sum(1) * (bt**2).sum(1))).max()))
    return v if np.isfinite(v) else float("inf")


def pool(max_nd: int, max_mag: float) -> list[Fraction]:
    """Positive candidate magnitudes n/d, 1 ≤ n, d ≤ max_nd, at most max_mag."""
    return sorted({Fraction(n, d) for n in range(1, max_nd + 1) for d in range(1, max_nd + 1)
                   if Fraction(n, d) <= max_mag})


def symmetric_candidates(m: int, r: int, mags: list[Fraction]) -> list[tuple[Fraction, ...]]:
    count = m + r - 2
    zero = [Fraction(0)] * (count % 2)
    return [tuple(zero + [s * v for v in c for s in (1, -1)]) for c in itertools.combinations(mags, count // 2)]


def local_search(m: int, r: int, mags: list[Fraction], restarts: int, seed: int) -> list[tuple[Fraction, ...]]:
    """Coordinate descent on β₂ from random starts, one point at a time over ±mags and 0."""
    full = [Fraction(0)] + [s * v for v in mags for s in (1, -1)]
    rng = random.Random(seed)
    out = []
    for _ in range(restarts):
        pts = rng.sample(full, m + r - 2)
        cur = beta2(pts, m, r)
        improved = True
        while improved:
            improved = False
            for i in range(len(pts)):
                for q in full:
                    if q in pts:
                        continue
                    trial = pts[:i] + [q] + pts[i + 1:]
                    v = beta2(trial, m, r)
                    if v < cur - 1e-12:
                        pts, cur, improved = trial, v, True
        out.append(tuple(sorted(pts)))
    return out


def measured(m: int, r: int, points, shapes, seeds) -> list[float]:
    """float32 rel_err of reference.winograd_conv2d vs float64 direct, per (seed, shape)."""
    from magma_wino import reference
    from magma_wino.accuracy import rel_err

    errs = []
    pad = (r - 1) // 2
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for C, K, H in shapes:
            x = rng.standard_normal((1, C, H, H)).astype(np.float32)
            w = rng.standard_normal((K, C, r, r)).astype(np.float32)
            ref = reference.conv2d_direct(x, w, padding=pad)
            errs.append(rel_err(reference.winograd_conv2d(x, w, m, padding=pad, points=points), ref))
    return errs


def _fmt(points) -> str:
    return ", ".join(str(p) for p in points)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tile", default="8,3", help="m,r (default 8,3)")
    ap.add_argument("--max-nd", type=int, default=8, help="largest numerator / denominator (default 8)")
    ap.add_argument("--max-mag", type=float, default=8.0, help="largest |point| (default 8)")
    ap.add_argument("--top", type=int, default=12, help="candidates (by β₂) to measure (default 12)")
    ap.add_argument("--local", type=int, default=0, metavar="N", help="N asymmetric local-search restarts")
    ap.add_argument("--shapes", nargs="+", default=["256,256,28", "512,512,28", "512,512,14"],
                    metavar="C,K,H", help="VGG-16 shapes measured (default the C = 256, 512 layers)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    m, r = (int(v) for v in args.tile.split(","))
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]

    from magma_wino.transforms import default_points, winograd

    mags = pool(args.max_nd, args.max_mag)
    cands = set(symmetric_candidates(m, r, mags))
    if args.local:
        cands |= set(local_search(m, r, mags, args.local, seed=0))
    ranked = sorted(cands, key=lambda c: beta2(c, m, r))
    base = [("default (current)", winograd(m, r).points), ("0, ±1, ±2, ±1/2, … (old)", default_points(m + r - 2))]
    todo = base + [("candidate", c) for c in ranked[: args.top]]
    rows, seen = [], set()
    for label, pts in todo:
        key = tuple(sorted(pts))
        if key in seen:
            continue
        seen.add(key)
        errs = measured(m, r, list(pts), shapes, args.seeds)
        rows.append({"label": label, "points": [str(p) for p in pts], "beta2": beta2(pts, m, r),
                     "max_rel": max(errs), "mean_over_cases": float(np.mean(errs))})
        print(f"{label:26s} β₂ {rows[-1]['beta2']:8.3f}  max {max(errs):.2e}  mean {np.mean(errs):.2e}  "
              f"[{_fmt(pts)}, inf]", flush=True)
    rows.sort(key=lambda row: row["max_rel"])
    print(f"\nF({m},{r}): {len(cands)} candidates screened by β₂, {len(rows)} measured "
          f"(shapes {args.shapes}, seeds {args.seeds}); best: [{', '.join(rows[0]['points'])}, inf] "
          f"max rel {rows[0]['max_rel']:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tile": [m, r], "shapes": shapes, "seeds": args.seeds, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
