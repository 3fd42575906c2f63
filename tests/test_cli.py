"""The magma-wino command line: each subcommand runs and reports what it should."""

from __future__ import annotations

import json

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
