"""Every command's options, driven through click's parsing with generated hostile values
(Hardening II): NaN, infinities, huge and negative integers, empty and non-numeric strings. Each is
refused where it is parsed: a non-zero exit, one `Error:` line naming the option, no traceback,
nothing written. Parse-level only: the bad option comes first, so no command body ever runs."""

from __future__ import annotations

import os
import tempfile

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpm_deploy.cli import main
from ddpm_deploy.cli.options import MAX_SEED, FiniteFloat

OPTIONS = [
    (name, option)
    for name, command in sorted(main.commands.items())
    for option in command.params
    if isinstance(option, click.Option) and not option.is_flag
]
NUMERIC = [
    (n, o)
    for n, o in OPTIONS
    if isinstance(o.type, (FiniteFloat, click.IntRange)) or o.type is click.INT
]
NOT_FINITE = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e999"])
NOT_A_NUMBER = st.sampled_from(["", " ", "abc", "1,5", "0x10", "--", "1e1e1"])


def bad_values(option: click.Option) -> st.SearchStrategy[str]:
    if isinstance(option.type, FiniteFloat):
        outside = []
        if option.type.lo is not None:
            outside.append(
                st.floats(
                    max_value=option.type.lo,
                    exclude_max=True,
                    allow_nan=False,
                    allow_infinity=False,
                ).map(repr)
            )
        if option.type.hi is not None:
            outside.append(
                st.floats(
                    min_value=option.type.hi,
                    exclude_min=True,
                    allow_nan=False,
                    allow_infinity=False,
                ).map(repr)
            )
        return st.one_of(NOT_FINITE, NOT_A_NUMBER, *outside)
    ints = [NOT_A_NUMBER, st.sampled_from(["1.5", "nan", "1e3"])]
    if isinstance(option.type, click.IntRange):
        if option.type.min is not None:
            ints.append(st.integers(max_value=option.type.min - 1).map(str))
        if option.type.max is not None:
            ints.append(st.integers(min_value=option.type.max + 1).map(str))
    return st.one_of(*ints)


def run_in_empty_folder(args: list[str]):
    """The CLI run in a new empty working folder; (result, what it left there)."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            result = CliRunner().invoke(main, args, catch_exceptions=True)
            left = os.listdir(".")
        finally:
            os.chdir(here)
    return result, left


def invoke(command: str, option: click.Option, value: str):
    args = [option.opts[-1], value] + [
        "x" for p in main.commands[command].params if isinstance(p, click.Argument)
    ]
    return run_in_empty_folder([command, *args])


@pytest.mark.parametrize("command, option", NUMERIC, ids=[f"{n} {o.opts[-1]}" for n, o in NUMERIC])
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_hostile_number_is_one_line_naming_the_option(command, option, data):
    value = data.draw(bad_values(option))
    result, left = invoke(command, option, value)
    assert result.exit_code == 2, (command, option.opts, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and option.opts[-1] in errors[0], result.output
    assert left == [], left


def test_every_float_option_refuses_non_finite_values_and_every_seed_is_bounded():
    """No option is a bare float (which takes 'nan' and 'inf'); every --seed is 0 .. 2**63-1."""
    bare = [f"{n} {o.opts[-1]}" for n, o in OPTIONS if o.type is click.FLOAT]
    assert not bare, f"use finite_float() for {bare}"
    seeds = [(n, o.type) for n, o in OPTIONS if o.name == "seed"]
    assert len(seeds) >= 7
    for name, kind in seeds:
        assert isinstance(kind, click.IntRange) and (kind.min, kind.max) == (0, MAX_SEED), name


def test_every_numeric_option_has_an_upper_bound_from_the_one_table():
    """Issue 35: no number reaches the work unbounded; each bound comes from bounds.py."""
    from ddpm_deploy.bounds import option_bound

    for name, option in NUMERIC:
        kind = option.type
        hi = kind.hi if isinstance(kind, FiniteFloat) else getattr(kind, "max", None)
        assert hi is not None, f"{name} {option.opts[-1]} has no upper bound"
        assert hi <= option_bound(name, option.name), (name, option.opts[-1])


@pytest.mark.parametrize(
    "args, fragment",
    [  # issue 35's probes: each reached gigabytes, a segfault or a NaN before
        (["distill", "x", "-o", "o", "--held-out", "1000000000"], "--held-out"),
        (["distill", "x", "-o", "o", "--batch-size", "1000000000"], "--batch-size"),
        (["distill", "x", "-o", "o", "--sub-steps", "1000000000"], "--sub-steps"),
        (["distill", "x", "-o", "o", "--threads", "1000000"], "--threads"),
        (["distill", "x", "-o", "o", "--lr", "1e308"], "--lr"),
        (["distill", "x", "-o", "o", "--guidance", "1e308"], "--guidance"),
        (["train", "--image-size", "4097"], "--image-size"),
        (["train", "--image-size", "100000"], "--image-size"),
        (["sample", "--eta", "5"], "--eta"),
        (["sample", "--guidance", "1e308"], "--guidance"),
        (["export-sampler", "--guidance", "101"], "--guidance"),
        (["export-web", "-o", "site", "--guidance", "101"], "--guidance"),
        (["learn-sampler", "x", "-o", "o.onnx", "--guidance", "101"], "--guidance"),
    ],
)
def test_issue_35_options_past_their_bound(args, fragment):
    result, left = run_in_empty_folder(args)
    assert left == [] and result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output


def test_the_api_holds_the_same_guidance_bound():
    from ddpm_deploy.runtime.guidance import check_guidance

    from ddpm_deploy.bounds import MAX_GUIDANCE
    from ddpm_deploy.errors import UserError

    check_guidance(MAX_GUIDANCE)
    with pytest.raises(UserError, match="in \\[0, 100\\]"):
        check_guidance(MAX_GUIDANCE * 2)


@pytest.mark.parametrize(
    "args, fragment",
    [  # the issue's probes, explicitly
        (["sample", "--seed", "-1"], "--seed"),
        (["sample", "--seed", str(2**64)], "--seed"),
        (["evaluate", "--seed", "-1"], "--seed"),
        (["distill", "--seed", "-1", "x", "-o", "o"], "--seed"),
        (["quantize", "--seed", "-1", "x", "-o", "o.onnx"], "--seed"),
        (["sample", "--eta", "nan"], "--eta"),
        (["sample", "--guidance", "inf"], "--guidance"),
        (["train", "--lr", "nan"], "--lr"),
    ],
)
def test_the_issue_probes(args, fragment):
    result, left = run_in_empty_folder(args)
    assert left == []
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert fragment in [line for line in result.output.splitlines() if line.startswith("Error:")][0]
