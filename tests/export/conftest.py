from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import tiny_unet


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    """One tiny diffusers save_pretrained folder (DDPMPipeline) that the refusal tests edit."""
    pytest.importorskip("diffusers")
    from diffusers import DDPMPipeline, DDPMScheduler

    out = tmp_path_factory.mktemp("good") / "pipeline"
    DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler()).save_pretrained(out)
    return out
