"""The ``magma-wino`` command line: validate, bench, accuracy, cost, info."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _info(args: argparse.Namespace) -> int:
    import platform  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from . import __version__, _backend  # noqa: PLC0415

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
    if args.kernels:
        tool = Path(__file__).resolve().parents[1] / "tools" / "kernel_report.py"
        if not tool.exists():
            print("--kernels needs a source checkout (tools/kernel_report.py)", file=sys.stderr)
            return 2
        import runpy  # noqa: PLC0415

        return int(runpy.run_path(str(tool))["main"]([]))
    return 0


def module_main(prog: str, doc: str, add_arguments, run, argv: list[str] | None = None) -> int:
    """``python -m magma_wino.<module>`` for a subcommand module with add_arguments/run."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args._argv = argv
    args.command_line = f"{prog} " + " ".join(argv)
    return int(run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="magma-wino", description="Winograd convolution kernels: validation, "
                                 "benchmarks, accuracy, cost and build info.")
    from . import __version__  # noqa: PLC0415

    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    from . import validate  # noqa: PLC0415

    p = sub.add_parser("validate", help="run every kernel over a shape sweep against float64 ground truth")
    validate.add_arguments(p)
    p.set_defaults(func=validate.run)

    p = sub.add_parser("bench", help="benchmarks: per-phase times, GFLOP/s, workspace, error")
    try:
        from . import bench  # noqa: PLC0415

        bench.add_arguments(p)
        p.set_defaults(func=bench.run)
    except ImportError as exc:  # pragma: no cover
        p.set_defaults(func=lambda a, e=exc: print(f"bench unavailable: {e}") or 2)

    p = sub.add_parser("accuracy", help="accuracy study: error against tile size, points and precision mode")
    try:
        from . import accuracy  # noqa: PLC0415

        accuracy.add_arguments(p)
        p.set_defaults(func=accuracy.run)
    except ImportError as exc:  # pragma: no cover
        p.set_defaults(func=lambda a, e=exc: print(f"accuracy unavailable: {e}") or 2)

    # Dispatched before parsing (below); listed here for --help.
    sub.add_parser("cost", help="exact multiplication/addition counts (magma-wino cost --help)", add_help=False)

    p = sub.add_parser("info", help="backends, versions, compiled architectures")
    p.add_argument("--kernels", action="store_true", help="static kernel report (needs nvcc and a source checkout)")
    p.set_defaults(func=_info)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cost"]:  # cost has its own parser: pass its options through untouched
        from . import cost  # noqa: PLC0415

        cost.main(argv[1:])
        return 0
    args = ap.parse_args(argv)
    args.command_line = "magma-wino " + " ".join(argv)  # recorded in the results of bench / accuracy
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
