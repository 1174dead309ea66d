"""Bad `serve --host/--log` and `sample --url` refused in one line before anything starts
(issue 35, D7, D8, D20). No test here starts a server: TritonGroup is replaced by one that fails."""

from __future__ import annotations

import os

import pytest

from tests.helpers import assert_one_line_error, run_cli


@pytest.fixture
def no_server(monkeypatch):
    """serve must refuse before it would start Triton: starting it fails the test."""
    from ddpm_deploy.serve import server

    def started(*args, **kwargs):
        raise AssertionError("serve started Triton although its options were bad")

    monkeypatch.setattr(server, "TritonGroup", started)


@pytest.mark.parametrize(
    "host", ["bad host", "localhost", "::1", "127.0.0.1:8000", "300.0.0.1", ""]
)
def test_serve_refuses_a_host_triton_cannot_bind(no_server, host):
    # Triton binds HTTP and metrics with inet_addr: a name binds 255.255.255.255 and never answers
    assert_one_line_error(run_cli("serve", "--host", host), "--host", "IPv4 address")


def test_serve_log_that_is_a_fifo_a_folder_or_under_a_file_is_refused(no_server, tmp_path):
    fifo = tmp_path / "lf"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("x")
    (tmp_path / "to_fifo").symlink_to(fifo)
    cases = {
        fifo: "a FIFO",
        tmp_path / "to_fifo": "a FIFO",
        tmp_path: "a folder",
        tmp_path / "file" / "triton.log": "not a folder",
        tmp_path / "file" / "deeper" / "triton.log": "not a folder",
    }
    before = sorted(tmp_path.iterdir())
    for log, fragment in cases.items():
        assert_one_line_error(run_cli("serve", "--log", log), "--log", fragment)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("http://[::1", "without the scheme"),
        ("http://127.0.0.1:8000", "without the scheme"),
        ("[::1:8000", "HOST:PORT[/MODEL]"),
        ("[::g]:8000", "HOST:PORT[/MODEL]"),
        ("bad host:8000", "HOST:PORT[/MODEL]"),
        ("127.0.0.1:99999", "1..65535"),
        ("127.0.0.1:0", "1..65535"),
        ("127.0.0.1:", "HOST:PORT[/MODEL]"),
        (":8000", "HOST:PORT[/MODEL]"),
        ("127.0.0.1:8000/a/b", "HOST:PORT[/MODEL]"),
        ("", "HOST:PORT[/MODEL]"),
    ],
)
def test_sample_refuses_a_malformed_url_naming_the_form(tmp_path, url, fragment):
    out = tmp_path / "out"
    result = run_cli("sample", "--backend", "triton", "--url", url, "-n", "1", "--out", out)
    assert_one_line_error(result, "--url", fragment)
    assert "no Triton server answers" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "url, address, model",
    [
        ("127.0.0.1:8000", "127.0.0.1:8000", None),
        ("localhost:8000/", "localhost:8000", None),
        ("triton.example.com", "triton.example.com", None),
        ("[::1]:8000/my_model", "[::1]:8000", "my_model"),
        ("10.0.0.2:8001/ddpm_denoiser", "10.0.0.2:8001", "ddpm_denoiser"),
    ],
)
def test_the_url_forms_accepted_today_still_parse(url, address, model):
    from ddpm_deploy.runtime.backends import split_url

    assert split_url(url) == (address, model)
