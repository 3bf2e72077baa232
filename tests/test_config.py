import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mygpt.config import ModelConfig, SampleConfig, TrainConfig
from mygpt.configure import PRESETS, build, field_help
from mygpt.errors import ConfigError


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    file = tmp_path / "run.toml"
    file.write_text("lr = 0.005\nbatch_size = 7\n[model]\nn_layer = 3\nn_embd = 48\n")
    cfg = build(
        TrainConfig,
        preset="tiny",  # sets n_layer, n_embd, batch_size and lr among others
        file=file,  # n_layer 3, n_embd 48, batch 7, lr 5e-3
        flags={"model.n_embd": 64, "lr": None},  # n_embd 64; lr not given
        sets=["model.n_embd=96", "max_iters=9"],
    )
    assert cfg.model.n_head == PRESETS["tiny"]["model"]["n_head"]  # preset over default
    assert cfg.model.n_layer == 3 and cfg.batch_size == 7 and cfg.lr == 0.005  # file over preset
    assert cfg.model.n_embd == 96 and cfg.max_iters == 9  # --set over flags
    assert cfg.eval_iters == PRESETS["tiny"]["eval_iters"]
    assert cfg.warmup_iters != TrainConfig().warmup_iters


def test_flags_beat_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"model": {"block_size": 48}, "seed": 5}))
    cfg = build(TrainConfig, file=file, flags={"model.block_size": 24})
    assert (cfg.model.block_size, cfg.seed) == (24, 5)


def test_defaults_are_the_default_preset() -> None:
    assert build(TrainConfig) == build(TrainConfig, preset="default") == TrainConfig()


def test_configs_are_frozen() -> None:
    cfg = TrainConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.lr = 1.0  # type: ignore[misc]


def test_heads_must_divide_width_with_advice() -> None:
    with pytest.raises(ConfigError, match=r"n_embd=100 is not divisible by n_head=6.*96, 102"):
        build(TrainConfig, flags={"model.n_embd": 100, "model.n_head": 6})


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"lr": -1.0}, r"lr=-1\.0 \(from --lr\): Input should be greater than 0"),
        (
            {"model.block_size": 0},
            r"model\.block_size=0 \(from --block-size\): Input should be greater than or equal to 1",
        ),
        ({"min_lr": 0.5}, r"min_lr=0\.5 is above lr"),
        ({"device": "tpu"}, r"device='tpu' is not one of"),
    ],
)
def test_invalid_values_name_value_and_source(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(TrainConfig, flags=flags)


def test_set_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'n_layer' in --set\. Did you mean 'model\.n_layer'\?"):
        build(TrainConfig, sets=["n_layer=4"])


def test_set_wrong_type_is_explained() -> None:
    with pytest.raises(
        ConfigError, match=r"model\.n_layer='four' \(from --set model\.n_layer\): Input should be a valid integer"
    ):
        build(TrainConfig, sets=["model.n_layer=four"])


def test_set_parses_json_values() -> None:
    cfg = build(TrainConfig, sets=["model.bias=false", "model.vocab_size=null", "device=cpu", "lr=3e-4"])
    assert cfg.model.bias is False and cfg.model.vocab_size is None and cfg.device == "cpu" and cfg.lr == 3e-4


def test_set_without_equals_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        build(TrainConfig, sets=["lr"])


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'\. Presets: default, tiny"):
        build(TrainConfig, preset="huge")


def test_a_yaml_file_is_a_layer_like_toml(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("max_iters: 30\nlr: 2.0e-3\nmodel:\n  n_layer: 3\n  dropout: 0.1\n")
    (tmp_path / "run.toml").write_text("max_iters = 30\nlr = 2.0e-3\n[model]\nn_layer = 3\ndropout = 0.1\n")
    from_yaml = build(TrainConfig, file=tmp_path / "run.yaml", flags={"lr": 1e-3})
    assert from_yaml == build(TrainConfig, file=tmp_path / "run.toml", flags={"lr": 1e-3})
    assert (from_yaml.max_iters, from_yaml.lr, from_yaml.model.n_layer) == (30, 1e-3, 3)


def test_min_lr_is_a_tenth_of_lr_unless_given() -> None:
    assert build(TrainConfig).min_lr == 3e-4  # the default lr's tenth
    assert build(TrainConfig, flags={"lr": 1e-4}).min_lr == 1e-5  # picoGPT's --lr 1e-4 alone is a valid run
    assert build(TrainConfig, flags={"lr": 1e-4, "min_lr": 0.0}).min_lr == 0.0
    with pytest.raises(ConfigError, match="min_lr=0.001 is above lr=0.0001"):
        build(TrainConfig, flags={"lr": 1e-4, "min_lr": 1e-3})


def test_config_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build(TrainConfig, file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1")
    with pytest.raises(ConfigError, match="could not be parsed"):
        build(TrainConfig, file=bad)
    ini = tmp_path / "run.ini"
    ini.write_text("lr = 1")
    with pytest.raises(ConfigError, match=r"\.toml, \.json, \.yaml or \.yml"):
        build(TrainConfig, file=ini)
    for name, text in [("bad.yaml", "lr: [1"), ("list.yaml", "- lr: 1")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match="could not be parsed|must hold a mapping"):
            build(TrainConfig, file=tmp_path / name)
    seed_layout = tmp_path / "seed.yaml"  # the production GPT's own layout
    seed_layout.write_text("training:\n  batch_size: 32\n  learning_rate: 0.0005\n")
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'.*another project's config layout.*small.yaml"):
        build(TrainConfig, file=seed_layout)
    (tmp_path / "mp.yaml").write_text("mixed_precision: true\n")
    with pytest.raises(ConfigError, match="unknown setting 'mixed_precision'.* Did you mean 'dtype'"):
        build(TrainConfig, file=tmp_path / "mp.yaml")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"model": {"layers": 3}}')
    with pytest.raises(ConfigError, match=r"unknown setting 'model\.layers'"):
        build(TrainConfig, file=unknown)


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"max_new_tokens": -1}, "max_new_tokens=-1"),
        ({"top_p": 0.0}, "top_p=0.0"),
        ({"top_p": 1.5}, "top_p=1.5"),
        ({"temperature": -0.1}, "temperature=-0.1"),
    ],
)
def test_sample_config_bounds(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(SampleConfig, flags=flags)


def test_head_size_is_derived() -> None:
    assert ModelConfig(n_embd=96, n_head=6).head_size == 16
    assert "head_size" not in ModelConfig.model_fields


def test_help_text_comes_from_the_field() -> None:
    assert (
        field_help(TrainConfig, "model.n_layer") == f"Number of transformer blocks. (default: {ModelConfig().n_layer})"
    )
    assert field_help(SampleConfig, "top_k") == "Sample only among the k most likely tokens."


def test_gpu_presets_build_the_shapes_they_promise() -> None:
    shakespeare = build(TrainConfig, preset="shakespeare")
    assert (
        shakespeare.model.n_layer,
        shakespeare.model.n_head,
        shakespeare.model.n_embd,
        shakespeare.model.block_size,
    ) == (6, 6, 384, 256)
    assert shakespeare.batch_size == 64
    gpt2 = build(TrainConfig, preset="gpt2", flags={"model.vocab_size": 50257})
    assert (gpt2.model.n_layer, gpt2.model.n_embd, gpt2.model.block_size, gpt2.model.pos, gpt2.model.gelu) == (
        12,
        768,
        1024,
        "learned",
        "tanh",
    )
    assert (
        gpt2.model.model_copy(update={"vocab_multiple": 64}).padded_vocab_size == 50304
    )  # nanoGPT's padded GPT-2 vocabulary
    assert gpt2.batch_size * gpt2.grad_accum * gpt2.model.block_size == 524_288
