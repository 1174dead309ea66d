"""Issue 35's smaller items: each option a command offers it also takes, and each refusal names an
option the command has."""

from tests.helpers import assert_one_line_error, run_cli


def test_forward_offers_only_the_datasets_it_draws(tmp_path):
    help_text = run_cli("forward", "--help").output
    assert "[fashion_mnist|fashion|mnist]" in help_text
    result = run_cli("forward", "--dataset", "folder", "--out", tmp_path / "f.png")
    assert result.exit_code == 2 and "'folder' is not one of" in result.output
    assert not (tmp_path / "f.png").exists()


def test_learn_sampler_refuses_guidance_for_an_unconditional_model(tmp_path):
    result = run_cli(
        "learn-sampler", "fashion_mnist_reference", "--guidance", "2", "-o", tmp_path / "x.onnx"
    )
    assert_one_line_error(result, "--guidance 2", "unconditional")
    assert list(tmp_path.iterdir()) == []
