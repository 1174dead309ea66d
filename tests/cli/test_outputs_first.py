"""Issue 35 item 4: outputs are checked before the work and made only after it, so a refusal or a
failure midway leaves no empty output folder behind."""

import pytest

from ddpm_deploy.errors import UserError
from tests.helpers import assert_one_line_error, run_cli


def test_a_refused_grid_leaves_no_out_folder(tmp_path):
    result = run_cli("sample", "--analytic", "40", "--out", tmp_path / "new")
    assert_one_line_error(result, "--analytic must be between 0 and")
    assert not (tmp_path / "new").exists()


def test_a_failure_during_the_work_leaves_no_out_folder(tmp_path, monkeypatch):
    from ddpm_deploy.runtime import pipeline

    def broken(*args, **kwargs):
        raise UserError("the sample became NaN/Inf at step 1 of 7 (t=999)")

    monkeypatch.setattr(pipeline, "_generate", broken)
    result = run_cli("sample", "-n", "2", "--out", tmp_path / "new" / "deeper")
    assert_one_line_error(result, "NaN/Inf")
    assert list(tmp_path.iterdir()) == []


def test_learn_sampler_checks_its_output_before_fitting(tmp_path):
    """-o under a file refused at once (it used to fit for minutes first)."""
    (tmp_path / "afile").write_text("")
    result = run_cli(
        "learn-sampler",
        "fashion_mnist",
        "--data-root",
        tmp_path,
        "-o",
        tmp_path / "afile" / "x.onnx",
    )
    assert_one_line_error(result, "afile")


@pytest.mark.parametrize("command", ["sample", "export-sampler"])
def test_a_missing_output_folder_is_made_at_the_end(tmp_path, command):
    out = tmp_path / "a" / "b"
    args = ["--out", out] if command == "sample" else ["-o", out / "s.onnx"]
    result = run_cli(command, *args, *(["-n", "1"] if command == "sample" else []))
    assert result.exit_code == 0, result.output
    assert any(out.iterdir())
