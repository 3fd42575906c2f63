"""The magma-wino command line: each subcommand runs and reports what it should."""

from __future__ import annotations

import json

import numpy as np
import pytest

from magma_wino import cli


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


def test_validate_fails_with_nonzero_exit_when_no_case_matches(capsys):
    # An empty sweep must not pass silently.
    assert cli.main(["validate", "--backend", "emulator", "--quick", "--filter", "no-such-group"]) == 1


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
