"""One group of model-and-backend options for every command that opens a model, one sampler group
and one class-and-guidance group for every command that samples, parsed into one request part
each (issue 28)."""

from __future__ import annotations

import dataclasses

import click
from ddpm_deploy.runtime.backends import ModelChoice
from ddpm_deploy.runtime.sampler_settings import SamplerSettings

from ddpm_deploy.cli import main
from ddpm_deploy.cli.options import MODEL_OPTIONS

OPENS_A_MODEL = ("sample", "evaluate", "serve", "bench")
SAMPLES = ("sample", "evaluate")
SAMPLER_OPTIONS = ("sampler", "steps", "analytic", "spacing", "eta", "variance", "clip")
CLASS_OPTIONS = ("class_", "guidance")


def names(command: str) -> set[str]:
    return {p.name for p in main.commands[command].params if isinstance(p, click.Option)}


def test_every_command_that_opens_a_model_offers_the_whole_group():
    for command in OPENS_A_MODEL:
        # bench names each backend's precision in its --backend list (openvino:bf16)
        wanted = set(MODEL_OPTIONS) - ({"precision", "backend"} if command == "bench" else set())
        missing = wanted - names(command)
        assert not missing, f"{command} lacks {sorted(missing)}"


def test_every_command_that_samples_offers_the_sampler_and_class_groups():
    for command in SAMPLES:
        assert set(SAMPLER_OPTIONS) <= names(command), command
        assert set(CLASS_OPTIONS) <= names(command), command
        assert not {"class_conditional", "random_class", "null_label"} & names(command), command
    helps = {c: {p.name: p.help for p in main.commands[c].params} for c in SAMPLES}
    assert helps["sample"]["class_"] == helps["evaluate"]["class_"]  # one definition


def test_each_group_is_one_request_part():
    assert {f.name for f in dataclasses.fields(ModelChoice)} == set(MODEL_OPTIONS)
    from ddpm_deploy.runtime.evaluate import EvalRequest
    from ddpm_deploy.runtime.pipeline import SampleRequest
    from ddpm_deploy.serve.server import ServeOptions

    for request in (SampleRequest, EvalRequest, ServeOptions):
        assert issubclass(request, ModelChoice), request
    from ddpm_deploy.runtime.guidance import ClassChoice

    assert {f.name for f in dataclasses.fields(ClassChoice)} == set(CLASS_OPTIONS)
    for request in (SampleRequest, EvalRequest):
        assert issubclass(request, SamplerSettings), request
        assert issubclass(request, ClassChoice), request


def test_an_option_the_backend_does_not_take_is_one_line(tmp_path):
    from tests.helpers import assert_one_line_error, run_cli

    for command in ("sample", "evaluate"):
        result = run_cli(command, "--provider", "cuda", "--backend", "openvino", "-n", "2")
        assert_one_line_error(result, "--provider cuda applies to --backend ort only, not openvino")
        result = run_cli(command, "--threads", "2", "--backend", "trt", "-n", "2")
        assert_one_line_error(
            result, "--threads 2 applies to --backend ort or openvino or torch only"
        )
