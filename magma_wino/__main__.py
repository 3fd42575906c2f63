"""``python -m magma_wino``: the installed C library's paths, or the ``magma-wino`` command line.

    python -m magma_wino --cmake-dir       # for find_package(magma_wino): -Dmagma_wino_DIR=...
    python -m magma_wino --include         # -I for <magma_wino.h>
    python -m magma_wino --libs            # the library directory (-L, -Wl,-rpath)
    python -m magma_wino --pkgconfig-dir   # for PKG_CONFIG_PATH
    python -m magma_wino validate --quick  # anything else: as magma-wino
"""

from __future__ import annotations

import sys

_PATHS = {"--cmake-dir": "cmake_dir", "--include": "include_dir", "--libs": "lib_dir",
          "--pkgconfig-dir": "pkgconfig_dir"}


def main(argv: list[str] | None = None) -> int:
    """The exit status: 0, or 2 when the C library is not installed (or the CLI's own status)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0] in _PATHS:
        from . import c_library

        try:
            print(getattr(c_library, _PATHS[argv[0]])())
        except FileNotFoundError as exc:
            print(f"python -m magma_wino {argv[0]}: {exc}", file=sys.stderr)
            return 2
        return 0
    from .cli import main as cli_main

    return int(cli_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
