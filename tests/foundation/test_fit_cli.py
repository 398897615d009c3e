"""``vidllm fit`` on jsonargparse: --print_config, repeated --config merges, unknown and mistyped
arguments named in one line, field docstrings in --help, the resolved config saved with the run,
command-line Trainer arguments winning over --trainer_config, and the command running
:func:`vidllm.training.fit.fit`."""

from pathlib import Path

import pytest
import yaml

from vidllm.cli import main
from vidllm.errors import ConfigError
from vidllm.training.fit_args import parse_fit_args

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


def _fit_args(*extra, configs=(TINY,)) -> list[str]:
    """``--config FILE`` for each of ``configs`` (in order), then ``extra``."""
    argv = []
    for path in configs:
        argv += ["--config", str(path)]
    return [*argv, *(str(a) for a in extra)]


def _printed(capsys, argv) -> dict:
    assert main(argv) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_prints_the_resolved_config_and_exits_0(capsys):
    printed = _printed(capsys, ["fit", "--stage", "2", *_fit_args("--print_config")])
    assert printed["stage"] == 2 and printed["model"]["train"]["stage"] == 2
    assert printed["model"]["encoder"]["hidden_size"] == 64  # from tiny.yaml
    assert printed["model"]["train"]["lr"] == 1.0e-3 and "max_steps" in printed["trainer"]


def test_two_configs_merge_in_order_later_wins(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("data:\n  num_frames: 5\n  batch_size: 3\n")
    (tmp_path / "b.yaml").write_text("data:\n  num_frames: 6\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    printed = _printed(capsys, ["fit", *_fit_args("--print_config", configs=(TINY, a, b))])
    data = printed["model"]["data"]
    assert data["num_frames"] == 6 and data["batch_size"] == 3 and data["image_size"] == 112
    args = parse_fit_args(_fit_args(configs=(TINY, b, a)))
    assert args.cfg.data.num_frames == 5 and args.cfg.encoder.hidden_size == 64


def test_overrides_win_over_configs_and_group_shorthand():
    args = parse_fit_args(
        _fit_args(
            "--data.num_frames",
            "4",
            "--model.cta.mode",
            "concat_sa",
            "--trainer.max_steps",
            "3",
            "--model.init_from",
            "x/model",
        )  # fmt: skip
    )
    assert args.cfg.data.num_frames == 4 and args.cfg.cta.mode == "concat_sa" and args.cfg.train.init_from == "x/model"
    assert args.trainer == {"max_steps": 3}


def test_mistyped_trainer_argument_is_named(capsys):
    assert main(["fit", *_fit_args("--trainer.max_stepz", "5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trainer.max_stepz" in err[0], err


@pytest.mark.parametrize(
    "argv, key",
    [
        (["--data.num_frames", "abc"], "model.data.num_frames"),
        (["--model.train.lr", "fast"], "model.train.lr"),
        (["--trainer.max_steps", "many"], "trainer.max_steps"),
        (["--trainer.enable_checkpointing", "maybe"], "trainer.enable_checkpointing"),
    ],
)
def test_bad_type_is_an_error_naming_the_key(argv, key, capsys):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_fit_args(_fit_args(*argv))
    assert main(["fit", *_fit_args(*argv)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err


def test_bad_key_in_a_config_file_names_file_and_key(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("vl:\n  voxel: 1\n")
    assert main(["fit", *_fit_args(configs=(TINY, tmp_path / "bad.yaml"))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vl.voxel" in err[0] and "bad.yaml" in err[0], err


def test_help_shows_field_docstrings(capsys):
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model.data.num_frames" in out and "Frames sampled per clip" in out  # DataConfig.num_frames's docstring
    assert "--trainer.max_steps" in out and "--model.train.lr_multipliers" in out


def test_help_shows_the_choices_of_literal_fields(capsys):
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model.cta.mode {bridge,none,concat_sa,cross_attn,add,xattn_fusion,passthrough}" in out
    assert "--model.llm.finetune {lora,full,frozen}" in out and "--model.train.stage {1,2}" in out


@pytest.mark.parametrize(
    "argv, key, choices",
    [
        (["--model.cta.mode", "bogus"], "model.cta.mode", "'bridge', 'none', 'concat_sa'"),
        (["--cta.scope", "bogus"], "model.cta.scope", "'clip', 'frame'"),
        (["--model.data.tasks", "[recon,bogus]"], "model.data.tasks", "'recon', 'qa', 'sqa', 'grounding', 'caption'"),
        (["--model.vl.readout.hops", "3"], "model.vl.readout.hops", "1, 2"),
    ],
)
def test_bad_choice_is_an_error_naming_the_key_and_the_choices(argv, key, choices, capsys):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_fit_args(_fit_args(*argv))
    assert main(["fit", "--config", TINY, *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and choices in err[0], err


def test_bad_choice_in_a_config_file_names_file_key_and_choices(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("llm:\n  finetune: qlora\n")
    assert main(["fit", "--config", TINY, "--config", str(tmp_path / "bad.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yaml" in err[0] and "llm.finetune" in err[0], err
    assert "['lora', 'full', 'frozen']" in err[0], err


def test_saved_cli_config_reruns_to_the_same_config(tmp_path):
    args = parse_fit_args(_fit_args("--stage", "1", "--data.num_frames", "4", "--trainer.max_steps", "2"))
    (tmp_path / "cli_config.yaml").write_text(args.cli_config)
    again = parse_fit_args(_fit_args(configs=(tmp_path / "cli_config.yaml",)))
    assert again.cfg == args.cfg and again.trainer == {"max_steps": 2} and again.stage == 1


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_command_line_trainer_arguments_win_over_the_trainer_config_even_at_their_default(tmp_path, form):
    from vidllm.training.fit import trainer_arguments

    (tmp_path / "cluster.yaml").write_text("log_every_n_steps: 7\naccumulate_grad_batches: 4\nstrategy: ddp\n")
    given = ["--trainer.log_every_n_steps", "1", "--trainer.accumulate_grad_batches", "1"]
    if form == "equals":
        given = ["--trainer.log_every_n_steps=1", "--trainer.accumulate_grad_batches=1"]
    args = parse_fit_args(_fit_args("--trainer_config", tmp_path / "cluster.yaml", *given))
    kwargs = trainer_arguments(args, tmp_path / "run")
    # written on the command line: they win although 1 is the parser's and Trainer's default
    assert kwargs["log_every_n_steps"] == 1 and kwargs["accumulate_grad_batches"] == 1
    assert kwargs["strategy"] == "ddp"  # not given: the file's
    alone = trainer_arguments(parse_fit_args(_fit_args("--trainer_config", tmp_path / "cluster.yaml")), tmp_path)
    assert alone["log_every_n_steps"] == 7 and alone["accumulate_grad_batches"] == 4


def test_fit_takes_a_list_not_a_command_string():
    from vidllm.training.fit import fit

    with pytest.raises(TypeError, match="shlex.split"):
        fit(f"--config {TINY}")
    with pytest.raises(TypeError, match="expected str"):
        parse_fit_args(["--config", TINY, "--trainer.max_steps", None])
    assert parse_fit_args(["--config", Path(TINY), "--trainer.max_steps", 3]).trainer == {"max_steps": 3}


@pytest.mark.parametrize("mode", ["fit", "validate", "test", "predict"])
def test_each_command_runs_the_library_fit_with_its_arguments(mode, monkeypatch):
    import vidllm.training.fit as library

    calls = []
    monkeypatch.setattr(library, "fit", lambda argv, mode="fit": calls.append((list(argv), mode)))
    assert main([mode, *_fit_args("--trainer.max_steps", "2")]) == 0
    assert calls == [(_fit_args("--trainer.max_steps", "2"), mode)]
