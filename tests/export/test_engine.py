"""The TensorRT engine build's helpers that need no GPU."""


def test_timing_cache_is_per_tensorrt_version_and_architecture(tmp_path):
    from ddpm_deploy.export.engine import timing_cache_path

    a = timing_cache_path(tmp_path, "10.3.0", "8.7")
    assert a.name == "timing.trt10.3.0.sm87.cache"
    assert (
        a
        != timing_cache_path(tmp_path, "10.4.0", "8.7")
        != timing_cache_path(tmp_path, "10.3.0", "9.0")
    )
