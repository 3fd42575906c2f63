"""The magma-wino command line: each subcommand runs and reports what it should; the
package's layout (one table of subcommand modules, imported lazily, never imported by the
library)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magma_wino import cli

PACKAGE = Path(cli.__file__).resolve().parents[1]  # magma_wino/


def test_info_lists_the_emulator_backend_as_built(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "emulator backend : built" in out
    assert "numpy backend    : always" in out


def test_validate_quick_3d_cases_pass_on_the_emulator_and_write_json(tmp_path, capsys):
    path = tmp_path / "v.json"
    assert cli.main(["validate", "--backend", "emulator", "--quick", "--filter", "3d", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["backend"] == "emulator"
    rows = data["results"]
    assert rows and all(r["ok"] for r in rows)
    assert {len(r["size"]) for r in rows} == {3}  # only 3D cases were selected
    assert "passed, 0 failed" in capsys.readouterr().out


def test_validate_with_a_filter_that_matches_no_case_exits_2_listing_the_groups(capsys):
    # An empty sweep must not pass silently, nor print an empty table.
    assert cli.main(["validate", "--backend", "emulator", "--quick", "--filter", "no-such-group"]) == 2
    out, err = capsys.readouterr()
    assert "--filter 'no-such-group' matches no case; the groups are:" in err and "3d" in err
    assert "magma_wino validate" not in out  # no table


def test_bench_with_layers_that_select_nothing_exits_2_listing_the_layers(capsys):
    assert cli.main(["bench", "--network", "vgg16", "--layers", "conv9", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "--layers 'conv9' selects no layer of --network vgg16" in err and "conv5_1" in err


def _widths(text: str) -> list[int]:
    return [len(line) for line in text.splitlines()]


@pytest.mark.parametrize("argv", [[], ["--network", "resnet18"], ["--network", "resnet50", "--r", "5", "--m", "2", "4"],
                                  ["--network", "c3d"], ["--batch", "32", "--totals-only"]], ids=str)
def test_cost_table_fits_80_columns_and_wide_shows_every_column(argv, capsys):
    assert cli.main(["cost", *argv]) == 0
    narrow = capsys.readouterr().out
    assert max(_widths(narrow)) <= 80
    header = narrow.splitlines()[0].split()
    assert header == ["layer", "F", "variant", "w_dens", "mults/out", "mult_ratio"]
    assert cli.main(["cost", *argv, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert {"adds/out", "direct/out", "filter_mults"} <= set(wide.splitlines()[0].split())
    assert len(wide.splitlines()) == len(narrow.splitlines())  # the same rows


def test_cost_json_has_the_rows_of_the_table(tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert cli.main(["cost", "--network", "resnet18", "--r", "5", "--m", "2", "--dense-only", "--totals-only",
                     "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert (doc["network"], doc["r"], doc["m"]) == ("resnet18", 5, [2])
    assert [row["F"] for row in doc["rows"]] == ["F(2,5)"] and doc["rows"][0]["layer"] == "total"
    assert "F(2,5)" in capsys.readouterr().out  # the table too
    assert cli.main(["cost", "--m", "2", "--dense-only", "--totals-only", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["rows"][0]["F"] == "F(2,3)"  # --json alone: JSON on stdout, no table


@pytest.mark.parametrize("argv,message", [
    (["--m", "20"], "--m 20 --r 3: F(m=20, r=3) has tile size alpha = m + r - 1 = 22; at most 16"),
    (["--m", "2", "--r", "16"], "--m 2 --r 16"),
    (["--r", "0"], "--r and --batch must be >= 1"),
])
def test_cost_with_an_unsupported_tile_says_so_and_exits_2(argv, message, capsys):
    assert cli.main(["cost", *argv]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err and out == ""


def test_validate_table_fits_80_columns_in_a_log(capsys):
    assert cli.main(["validate", "--backend", "numpy", "--quick", "--filter", "3d generic"]) == 0
    out = capsys.readouterr().out
    assert max(_widths(out)) <= 80 and "passed, 0 failed" in out


def test_accuracy_json_to_stdout_is_the_study_without_tables(capsys):
    argv = ["accuracy", "--tiles", "2,3", "--points", "default", "--no-emulator", "--no-nnpack",
            "--no-precision", "--layers", "conv1_2", "--spatial", "6", "--json", "-"]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["F"] for s in doc["summary"]] == ["F(2,3)"] and doc["meta"]["dtype"] == "float32"


def test_validate_reports_a_failing_case_with_its_shapes(monkeypatch, capsys):
    from magma_wino import validate

    real = validate.run_case

    def broken(case, backend):
        res = real(case, backend)
        res.ok = False  # as if the kernel had produced a wrong answer
        return res

    monkeypatch.setattr(validate, "run_case", broken)
    assert cli.main(["validate", "--backend", "emulator", "--quick", "--filter", "3d generic"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "C=3" in out and "seed=" in out


def test_cost_prints_the_vgg16_table(capsys):
    assert cli.main(["cost", "--network", "vgg16", "--dense-only", "--m", "2"]) == 0
    out = capsys.readouterr().out
    assert "F(2,3)" in out or "F(2, 3)" in out


@pytest.mark.parametrize("argv", [["validate", "--backend", "opencl"], ["nonexistent"]])
def test_bad_cli_arguments_exit_with_usage_error(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_version_prints_the_package_version(capsys):
    from magma_wino import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"magma-wino {__version__}"


def test_validate_cuda_without_a_usable_gpu_says_why_once_and_exits_2(monkeypatch, capsys):
    from magma_wino import _backend, validate

    monkeypatch.setattr(_backend, "cuda_unavailable_reason", lambda: "CuPy is not installed (pip install ...)")
    ran = []
    monkeypatch.setattr(validate, "run_case", lambda case, backend: ran.append(case))
    assert cli.main(["validate", "--backend", "cuda", "--quick"]) == 2
    captured = capsys.readouterr()
    assert not ran, "no case may run when the backend is unusable"
    assert captured.err.count("CuPy is not installed") == 1
    assert "--backend emulator" in captured.err
    assert "FAILED" not in captured.out + captured.err


def test_validate_groups_cases_that_fail_with_the_same_exception(monkeypatch, capsys):
    from magma_wino import validate

    def crash(case, backend):
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setattr(validate, "run_case", crash)
    assert cli.main(["validate", "--backend", "emulator", "--quick", "--filter", "tile-edge"]) == 1
    out = capsys.readouterr().out
    n = len([c for c in validate.cases(True, "emulator") if "tile-edge" in c.group])
    assert n > 3
    assert out.count("cudaErrorNoDevice") == 1  # the message once ...
    assert f"{n} cases with the same error" in out  # ... with the count
    assert f"and {n - 3} more" in out and out.count("Case(group=") == 3


@pytest.mark.parametrize("backend, resolved", [("emulator", "tf32x3"), ("numpy", "fp32")])
def test_validate_shows_the_resolved_precision_per_row(tmp_path, capsys, backend, resolved):
    path = tmp_path / "v.json"
    assert cli.main(["validate", "--backend", backend, "--quick", "--filter", "3d generic", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and resolved in out
    rows = json.loads(path.read_text())["results"]
    assert rows and all(r["precision"] == resolved and r["precision_requested"] == "auto" for r in rows)


def test_validate_precision_option_runs_only_that_mode(tmp_path, capsys):
    from magma_wino import validate

    path = tmp_path / "v.json"
    argv = ["validate", "--backend", "emulator", "--quick", "--precision", "tf32x3", "--filter", "precision",
            "--json", str(path)]
    assert cli.main(argv) == 0
    data = json.loads(path.read_text())
    rows = data["results"]
    assert data["precision"] == "tf32x3"
    want = [c for c in validate.cases(True, "emulator") if c.group == "precision" and c.precision == "tf32x3"]
    assert len(rows) == len(want) == len(validate.SPECIALIZED_2D) + 1  # every specialised 2D tile + 3D F(2,3)
    assert all(r["group"] == "precision" and r["precision"] == "tf32x3" and r["ok"] for r in rows)
    out = capsys.readouterr().out
    assert "tf32x3" in out and " fp32 " not in out and " tf32 " not in out


def test_validate_precision_group_has_tf32_only_where_precision_allows_it():
    from magma_wino import precision, validate
    from magma_wino.accuracy import USABLE_LIMIT

    group = [c for c in validate.cases(True, "emulator") if c.group == "precision"]
    tf32 = {(c.m, c.r, c.ndim) for c in group if c.precision == "tf32"}
    assert tf32 == {(m, r, nd) for (mode, m, r, nd), err in precision.MEASURED_REL_ERR.items()
                    if mode == "tf32" and err * precision.MEASURED_MARGIN <= USABLE_LIMIT[np.dtype(np.float32)]
                    and ((m, r) in validate.SPECIALIZED_2D if nd == 2 else (m, r) == (2, 3))}
    assert (4, 3, 2) not in tf32
    # tf32 still runs in validate: on float16 data ("half data"), whose limit it meets at F(2, 3)
    half = {(c.m, c.ndim, c.dtype) for c in validate.cases(True, "emulator") if c.precision == "tf32"}
    assert (2, 2, "float16") in half
    for mode in ("fp32", "tf32x3"):
        assert len([c for c in group if c.precision == mode]) == len(validate.SPECIALIZED_2D) + 1


def test_validate_bad_precision_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", "--backend", "emulator", "--quick", "--precision", "fp8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--precision" in err and "invalid choice" in err


# ----------------------------------------------------------------- the package's layout


def _imports(source: str, package: str) -> set[str]:
    """Every module an import statement of ``source`` (a module of ``package``) names, relative
    imports resolved; ``from a import b`` counts ``a`` and ``a.b`` (b may be a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _imports_cli(source: str, package: str) -> bool:
    return any(m == "magma_wino.cli" or m.startswith("magma_wino.cli.") for m in _imports(source, package))


def test_the_import_check_sees_every_spelling_of_importing_the_cli():
    for src, pkg in [("from .cli import main", "magma_wino"), ("from . import cli", "magma_wino"),
                     ("from ..cli._common import PROG", "magma_wino.torch"), ("import magma_wino.cli.bench", "magma_wino"),
                     ("def f():\n    from magma_wino.cli import main", "magma_wino")]:
        assert _imports_cli(src, pkg), src
    for src, pkg in [("from . import cost", "magma_wino"), ("from .client import x", "magma_wino"),
                     ("import magma_wino.cost", "magma_wino")]:
        assert not _imports_cli(src, pkg), src


def test_library_modules_do_not_import_the_cli():
    # magma_wino/__main__.py is an entry point (python -m magma_wino), as the console script is
    files = [f for f in PACKAGE.rglob("*.py") if (PACKAGE / "cli") not in f.parents and f != PACKAGE / "__main__.py"]
    names = {f.name for f in files}
    assert {"validate.py", "bench.py", "accuracy.py", "cost.py", "sanitize.py", "layer.py"} <= names
    assert not (PACKAGE / "cli.py").exists()
    bad = []
    for f in files:
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        package = ".".join(rel.parts if f.name == "__init__.py" else rel.parts[:-1])
        if _imports_cli(f.read_text(), package):
            bad.append(str(rel))
    assert not bad, f"library modules importing magma_wino.cli: {bad}"


def test_help_lists_the_six_subcommands_in_table_order(capsys):
    assert cli.SUBCOMMANDS == ("validate", "bench", "accuracy", "cost", "experiment", "info")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    listing = capsys.readouterr().out.split("COMMAND\n", 2)[-1]
    # one line per subcommand, indented 4 (a wrapped help line continues further in)
    first_words = [ln.split()[0] for ln in listing.splitlines() if re.match(r"^ {4}\S", ln)]
    assert first_words[:6] == list(cli.SUBCOMMANDS)


def test_every_subcommand_module_has_the_interface():
    for name in cli.SUBCOMMANDS:
        mod = cli._import_subcommand(name)
        assert isinstance(mod.HELP, str) and mod.HELP and "\n" not in mod.HELP, name
        assert callable(mod.add_arguments) and callable(mod.run) and callable(mod.main), name


def test_an_unavailable_subcommand_is_listed_and_returns_2_with_the_message(monkeypatch, capsys):
    real = cli._import_subcommand

    def no_matplotlib(name):
        if name == "accuracy":
            raise ImportError("No module named 'matplotlib'")
        return real(name)

    monkeypatch.setattr(cli, "_import_subcommand", no_matplotlib)
    assert cli.main(["accuracy", "--quick", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "magma-wino accuracy unavailable: No module named 'matplotlib'"
    assert cli.main(["accuracy", "--help"]) == 2  # --help too: its options are unknown
    assert "unavailable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "(unavailable: No module named 'matplotlib')" in out and "bench" in out
    assert cli.main(["cost", "--totals-only"]) == 0  # the others still run


def test_both_entry_points_record_the_same_command_line(monkeypatch):
    from magma_wino.cli import cost as cost_cli

    seen = []
    monkeypatch.setattr(cost_cli, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["cost", "--m", "2", "--totals-only"]) == 0
    assert cost_cli.main(["--m", "2", "--totals-only"]) == 0
    top, alone = seen
    assert top.command_line == alone.command_line == "magma-wino cost --m 2 --totals-only"
    assert top._argv == alone._argv == ["--m", "2", "--totals-only"]
    assert top.m == alone.m == [2] and top.totals_only and alone.totals_only


def test_cost_is_an_ordinary_subcommand_with_its_options(capsys):
    parser = cli.build_parser("cost")
    args = parser.parse_args(["cost", "--network", "c3d", "--m", "2", "4", "--batch", "3", "--totals-only",
                              "--dense-only", "--markdown"])
    assert (args.network, args.m, args.batch, args.totals_only, args.dense_only, args.markdown) == \
        ("c3d", [2, 4], 3, True, True, True)
    assert cli.main(["cost", "--network", "c3d", "--totals-only", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("|") and "total" in out


def test_info_imports_no_other_subcommand_nor_torch_or_matplotlib():
    code = ("import sys; from magma_wino.cli import main; rc = main(['info']); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'magma_wino.bench', 'magma_wino.validate', "
            "'magma_wino.cli.bench', 'magma_wino.cli.validate') if m in sys.modules)); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_magma_wino_cli_runs_the_command_line():
    p = subprocess.run([sys.executable, "-m", "magma_wino.cli", "info"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "numpy backend    : always" in p.stdout
    p = subprocess.run([sys.executable, "-m", "magma_wino.cli.cost", "--totals-only"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "total" in p.stdout


def test_python_m_magma_wino_runs_the_command_line_or_names_the_missing_library(monkeypatch, capsys):
    from magma_wino import __main__ as entry
    from magma_wino import c_library

    assert entry.main(["cost", "--m", "2", "--dense-only", "--totals-only"]) == 0
    assert "F(2,3)" in capsys.readouterr().out

    def missing():
        raise FileNotFoundError("the C library is not installed with this magma_wino")

    monkeypatch.setattr(c_library, "cmake_dir", missing)
    assert entry.main(["--cmake-dir"]) == 2
    assert "python -m magma_wino --cmake-dir: the C library is not installed" in capsys.readouterr().err


def test_bench_table_fits_80_columns_and_wide_has_every_column(capsys):
    argv = ["bench", "--quick", "--backend", "numpy", "--no-progress", "--no-baselines", "--network", "vgg16",
            "--batch", "1", "--tile", "4"]
    assert cli.main(argv) == 0
    narrow = capsys.readouterr().out
    assert max(_widths(narrow)) <= 80
    head = next(line for line in narrow.splitlines() if "layer" in line).split()
    assert head == ["layer", "N", "F(m,r)", "density", "backend", "precision", "ms", "GFLOP/s", "ok"]
    assert "conv5_1/5_" in narrow and "yes" in narrow  # folded, not cut: nothing lost
    assert cli.main([*argv, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "in/prod/out ms" in wide and "workspace MiB" in wide
