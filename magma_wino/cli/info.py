"""``magma-wino info``: versions, built backends, CUDA runtime, and (``--kernels``, from a
source checkout) the static kernel report of tools/kernel_report.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import standalone_main

__all__ = ["HELP", "add_arguments", "run", "main"]

HELP = "backends, versions, compiled architectures"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino info`` to ``parser``."""
    parser.add_argument("--kernels", action="store_true",
                        help="static kernel report (needs nvcc and a source checkout)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print what was built and what is usable here; 2 if ``--kernels`` has no source checkout."""
    # Imported here, not at the top: `magma-wino --help` imports every subcommand module.
    import platform

    import numpy as np

    from .. import __version__, _backend

    print(f"magma_wino {__version__}  (Python {platform.python_version()}, NumPy {np.__version__})")
    emu = _backend.extension("emulator", required=False)
    print(f"  emulator backend : {'built, ' + str(emu.build_info()) if emu else 'NOT built'}")
    if emu is not None:
        print(f"                     workers={emu.get_workers()} order={emu.get_order()}")
    cuda = _backend.extension("cuda", required=False)
    print(f"  cuda extension   : {'built, ' + str(cuda.build_info()) if cuda else 'not built (no nvcc, or MW_CUDA=OFF, at install time)'}")
    if cuda is not None:
        print(f"  CUDA runtime     : {cuda.runtime_info()}")
    cp = _backend.cupy_module()
    if cp is None:
        print("  CuPy             : not installed (pip install 'magma-wino[cuda]')")
    else:
        try:
            avail = cp.is_available()
        except Exception as exc:  # pragma: no cover - broken installs
            avail = f"error: {exc}"
        print(f"  CuPy             : {cp.__version__}, GPU available: {avail}")
    print(f"  cuda backend     : {'usable' if _backend.cuda_available() else 'not usable here'}")
    print("  numpy backend    : always")
    if getattr(args, "kernels", False):
        tool = Path(__file__).resolve().parents[2] / "tools" / "kernel_report.py"  # magma_wino/cli/ -> root
        if not tool.exists():
            print("--kernels needs a source checkout (tools/kernel_report.py)", file=sys.stderr)
            return 2
        import runpy

        return int(runpy.run_path(str(tool))["main"]([]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.info [--kernels]``; the exit status."""
    return standalone_main("info", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
