"""ONNX Runtime's quantize_static writes <model>-inferred.onnx beside its input and removes it:
quantize must never do that beside the user's model (issue 35: a user's file of that name was
replaced and then deleted; a probe's Ctrl-C left one inside the installed package's models)."""

from __future__ import annotations

import shutil

import pytest

from ddpm_deploy.shipped import resolve_model

pytest.importorskip("onnx")


def test_quantize_writes_nothing_beside_its_input(tmp_path):
    from ddpm_deploy.export.quantize import quantize_file, sampler_batches
    from ddpm_deploy.export.quantize_settings import DEFAULT_SETTING, settings_for

    src = tmp_path / "m.onnx"
    shutil.copyfile(resolve_model("mnist"), src)
    mine = tmp_path / "m-inferred.onnx"
    mine.write_text("the user's own file")
    feeds = sampler_batches(src, batches=1, batch=2, seed=0)
    out = tmp_path / "out" / "q.onnx"
    out.parent.mkdir()
    quantize_file(src, out, settings_for(DEFAULT_SETTING), feeds)
    assert out.is_file()
    assert mine.read_text() == "the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-inferred.onnx", "m.onnx", "out"]
