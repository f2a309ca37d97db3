import json
import math
import time

import numpy as np
import pytest

from pipelines.cli import main
from pretrain import scaling
from pretrain.hardware import ACCELERATORS
from pretrain.memory import estimate_memory, fit_advice
from pretrain.planner import PlanError, plan, plan_from_config
from pretrain.shape import (
    ModelShape,
    ffn_hidden_for,
    param_breakdown,
    param_count,
    shape_for_params,
)

H100_DAY_ON_8 = dict(gpu="h100", gpus=8, hours=24, mfu=0.4)


def close(actual, expected, tolerance=0.05):
    return abs(actual / expected - 1) <= tolerance


# --- Chinchilla Table 3, both directions -------------------------------------------------


@pytest.mark.parametrize("params, flops, tokens", scaling.CHINCHILLA_TABLE_3)
def test_table_3_from_flops(params, flops, tokens):
    result = plan(flops=flops, law="chinchilla-1")
    assert close(result.params, params) and close(result.tokens, tokens)
    assert close(result.flops, flops, 1e-6)


@pytest.mark.parametrize("params, flops, tokens", scaling.CHINCHILLA_TABLE_3)
def test_table_3_from_params(params, flops, tokens):
    result = plan(params=params, law="chinchilla-1")
    assert result.params == round(params)
    assert close(result.tokens, tokens) and close(result.flops, flops)


@pytest.mark.parametrize("params, flops, tokens", scaling.CHINCHILLA_TABLE_A3_APPROACH_2)
def test_table_a3_approach_2_both_directions(params, flops, tokens):
    from_flops = plan(flops=flops, law="chinchilla-2")
    assert close(from_flops.params, params) and close(from_flops.tokens, tokens)
    from_params = plan(params=params, law="chinchilla-2")
    assert close(from_params.tokens, tokens) and close(from_params.flops, flops)


def test_power_laws_recover_the_published_exponents():
    # Hoffmann et al. 2022, Table 2: a = 0.50 (Approach 1), 0.49 (Approach 2).
    assert abs(scaling.LAWS["chinchilla-1"].allocation.a - 0.50) < 0.005
    assert abs(scaling.LAWS["chinchilla-2"].allocation.a - 0.49) < 0.005


@pytest.mark.parametrize("fit", [scaling.CHINCHILLA_FIT, scaling.EPOCH_FIT])
def test_parametric_optimum_is_the_isoflop_minimum(fit):
    flops = 1e22
    sizes = np.logspace(8, 12, 20001)
    losses = fit.loss(sizes, flops / (6 * sizes))
    best, tokens = fit.optimum(flops)
    assert close(sizes[np.argmin(losses)], best, 0.005)
    assert close(fit.tokens_for_params(best), tokens, 1e-9)
    assert close(fit.params_for_tokens(tokens), best, 1e-9)


def test_epoch_fit_gives_about_20_tokens_per_param_and_rounded_chinchilla_far_more():
    for flops in (1e21, 1e23, 1e25):
        epoch = plan(flops=flops, law="epoch").tokens_per_param
        approach_1 = plan(flops=flops, law="chinchilla-1").tokens_per_param
        rounded = plan(flops=flops, law="chinchilla-3").tokens_per_param
        assert 15 < epoch < 25 and 20 < approach_1 < 23
        assert rounded > 2 * epoch


def test_pf_days_and_predicted_loss():
    result = plan(flops=8.64e19)
    assert result.pf_days == pytest.approx(1.0)
    n, d = result.params, result.tokens
    assert result.predicted_loss == pytest.approx(
        1.8172 + 482.01 / n**0.3478 + 2085.43 / d**0.3658, rel=1e-6
    )
    # Approaches 1 and 2 have no loss model of their own: Epoch's predicts theirs.
    one = plan(flops=1e21, law="chinchilla-1")
    epoch_loss = scaling.EPOCH_FIT.loss(one.params, one.tokens)
    assert one.predicted_loss == pytest.approx(float(epoch_loss))


# --- memory ---------------------------------------------------------------------------------


def test_one_billion_params_fp32_memory():
    single = estimate_memory(10**9, "fp32")
    assert single.weights_gb == pytest.approx(4.0)
    assert single.gradients_gb == pytest.approx(4.0) and single.optimizer_gb == pytest.approx(8.0)
    assert single.total_gb_per_gpu == pytest.approx(24.0)
    sharded = estimate_memory(10**9, "fp32", sharding="fsdp", gpus=4)
    assert sharded.states_gb == pytest.approx(single.states_gb / 4)
    assert sharded.activations_gb == single.activations_gb


def test_precision_changes_the_bytes_per_parameter():
    mixed = estimate_memory(10**9, "bf16-mixed")
    assert (mixed.weights_gb, mixed.gradients_gb, mixed.optimizer_gb) == pytest.approx((2, 2, 12))
    pure = estimate_memory(10**9, "bf16")
    assert pure.states_gb == pytest.approx(8.0)


def test_plan_memory_uses_the_built_model():
    result = plan(params=1e9, precision="fp32", law="chinchilla-1")
    assert result.memory.weights_gb == pytest.approx(4 * result.params_exact / 1e9)
    assert close(result.memory.total_gb_per_gpu, 24.0, 0.03)


def test_activations_from_the_shape_scale_with_the_micro_batch():
    shape = ModelShape(
        n_layer=2, d_model=128, n_head=2, vocab_size=1000, seq_len=64, ffn_hidden=512
    )
    one = estimate_memory(param_count(shape), "bf16-mixed", shape=shape, micro_batch=1)
    four = estimate_memory(param_count(shape), "bf16-mixed", shape=shape, micro_batch=4)
    per_token = 2 * (8 * 128 + 4 * 512) * 2 + 2 * 128 * 2 + 1000 * (2 + 4)
    assert one.activations_gb == pytest.approx(64 * per_token / 1e9)
    assert four.activations_gb == pytest.approx(4 * one.activations_gb)


def test_memory_warning_names_the_smallest_sharding_that_fits():
    lone = plan(params=7e9, gpu="h100")
    advice = [w for w in lone.warnings if w.startswith("memory:")]
    assert len(advice) == 1
    states, act = lone.memory.states_gb, lone.memory.activations_gb
    usable = 0.9 * 80
    smallest = next(n for n in range(1, 1000) if states / n + act <= usable)
    assert f"--sharding fsdp over {smallest} GPUs" in advice[0]
    sharded = estimate_memory(lone.params_exact, "bf16-mixed", "fsdp", smallest, lone.model)
    assert fit_advice(sharded, 80, smallest) is None
    eight = plan(params=7e9, gpu="h100", gpus=8)
    assert any("--sharding fsdp over the 8 GPUs fits" in w for w in eight.warnings)
    fitted = plan(params=7e9, gpu="h100", gpus=8, sharding="fsdp")
    assert not [w for w in fitted.warnings if w.startswith("memory:")]


# --- data-constrained and inference-aware -----------------------------------------------


def test_scarce_data_warns_and_plans_a_smaller_model_for_more_epochs():
    free = plan(**H100_DAY_ON_8)
    scarce = plan(**H100_DAY_ON_8, unique_tokens=2e9)
    assert scarce.params < 0.8 * free.params
    assert scarce.flops == pytest.approx(free.flops)
    assert scarce.epochs > free.tokens / 2e9 > 4
    assert scarce.effective_tokens < scarce.tokens
    [note] = [w for w in scarce.warnings if w.startswith("data-constrained")]
    assert "smaller" in note and "Muennighoff" in note
    repeating = scaling.constrained_loss(scaling.EPOCH_FIT, free.params, free.tokens, 2e9)
    assert scarce.predicted_loss < float(repeating)


def test_a_few_epochs_keep_the_compute_optimal_model_and_repeat():
    free = plan(flops=1e21)
    repeated = plan(flops=1e21, unique_tokens=free.tokens / 3)
    assert repeated.params == free.params
    assert repeated.epochs == pytest.approx(3.0, rel=1e-6)
    [note] = [w for w in repeated.warnings if w.startswith("data-constrained")]
    assert "repeating the data" in note and "nearly as good as new" in note
    assert free.predicted_loss < repeated.predicted_loss < free.predicted_loss * 1.01


def test_effective_data_matches_muennighoff():
    # Four epochs of U: R_D = 3, D' = U (1 + 15.4 (1 - e^(-3/15.4))).
    unique = 1e9
    expected = unique * (1 + 15.4 * (1 - math.exp(-3 / 15.4)))
    assert float(scaling.effective_tokens(4 * unique, unique)) == pytest.approx(expected)
    assert 0.9 < expected / (4 * unique) < 1.0
    assert float(scaling.effective_tokens(0.5 * unique, unique)) == pytest.approx(0.5 * unique)


def test_enough_data_is_no_constraint():
    result = plan(flops=1e21, unique_tokens=1e12)
    assert result.params == plan(flops=1e21).params
    assert result.epochs < 1 and not result.warnings


def test_inference_heavy_plan_is_smaller_at_equal_loss():
    optimal = plan(flops=1e21)
    serving = plan(flops=1e21, inference_tokens=1e13)
    assert serving.params < 0.5 * optimal.params
    assert serving.tokens > optimal.tokens
    assert serving.predicted_loss == pytest.approx(optimal.predicted_loss, abs=1e-3)
    def lifetime(p):
        return 6 * p.params * p.tokens + 2 * p.params * 1e13

    assert lifetime(serving) < 0.6 * lifetime(optimal)
    assert any("inference-aware" in w and "exceeds" in w for w in serving.warnings)


def test_little_serving_changes_little():
    optimal = plan(flops=1e21)
    light = plan(flops=1e21, inference_tokens=1e6)
    assert close(light.params, optimal.params, 0.01)


# --- manifest, config, inputs -------------------------------------------------------------


def write_manifest(directory, **extra):
    manifest = {"tokenizer_sha256": "ab" * 32, "train_tokens": 3_000_000_000,
                "val_tokens": 30_000_000, "unique_documents": 1_000_000, **extra}
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_tokens_manifest_gives_unique_tokens_and_vocab(tmp_path):
    path = write_manifest(tmp_path, vocab_size=50_000)
    result = plan(flops=1e21, tokens_manifest=path)
    assert result.unique_tokens == 3_000_000_000
    assert result.model.vocab_size == 50_000
    assert result.to_json()["model"]["vocab_size"] == 50_000
    assert plan(flops=1e21, tokens_manifest=write_manifest(tmp_path)).model.vocab_size == 32_000


def test_tokens_manifest_errors_name_the_flag(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"val_tokens": 5}))
    with pytest.raises(PlanError, match="^--tokens-manifest: .*train_tokens"):
        plan(flops=1e21, tokens_manifest=tmp_path / "manifest.json")
    with pytest.raises(PlanError, match="^--tokens-manifest: no such file"):
        plan(flops=1e21, tokens_manifest=tmp_path / "missing.json")
    with pytest.raises(PlanError, match="--vocab-size 32000 differs"):
        path = write_manifest(tmp_path, vocab_size=50_000)
        plan(flops=1e21, tokens_manifest=path, vocab_size=32_000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(flops=1e21, hours=3, gpu="h100", gpus=8), "--flops and --hours each set"),
        (dict(hours=3, gpu="h100"), "--hours needs --gpus"),
        (dict(gpu_hours=100), "--gpu-hours needs --gpu"),
        (dict(flops=1e21, mfu=0.5), "--mfu needs --gpu"),
        (dict(flops=1e21, gpu="h100", mfu=1.5), r"--mfu must be in \(0, 1\]"),
        (dict(flops=1e21, gpu="v100", precision="bf16-mixed"), "not available on --gpu v100"),
        (dict(flops=1e21, unique_tokens=1e9, tokens_manifest="m.json"), "not both"),
        (dict(flops="lots"), "--flops must be a number"),
        (dict(flops=-1), "--flops must be positive"),
        (dict(flops=1e21, law="kaplan"), "--law must be one of"),
        (dict(), "nothing to plan from"),
    ],
)
def test_bad_or_inconsistent_inputs_name_the_flags(kwargs, message):
    with pytest.raises(PlanError, match=message):
        plan(**kwargs)


def test_gpu_budget_and_hours():
    result = plan(**H100_DAY_ON_8)
    assert result.budget_flops == pytest.approx(8 * 24 * 3600 * 989.5e12 * 0.4)
    assert result.gpu_hours == pytest.approx(8 * 24) and result.wall_hours == pytest.approx(24)
    same = plan(gpu="h100", gpu_hours=192, mfu=0.4)
    assert same.params == result.params
    assert plan(flops=1e21, gpu="v100").memory.precision == "fp16-mixed"
    assert ACCELERATORS["h200"].memory_gb == 141


def test_counts_accept_suffixes():
    assert plan(params="1.3B").params == 1_300_000_000
    assert plan(unique_tokens="400M").unique_tokens == 400_000_000


def test_config_section_and_unknown_key():
    result = plan_from_config({"flops": "1e21", "gpu": "h100", "gpus": 8, "law": "chinchilla-1"})
    assert result.params == plan(flops=1e21, law="chinchilla-1").params
    with pytest.raises(PlanError) as err:
        plan_from_config({"flops": 1e21, "unique_token": 2e9})
    assert str(err.value) == "plan.unique_token: unknown key"
    with pytest.raises(PlanError, match="^plan.mfu needs plan.gpu$"):
        plan_from_config({"flops": 1e21, "mfu": 0.5})


def test_every_plan_is_fast():
    start = time.perf_counter()
    plan(**H100_DAY_ON_8, unique_tokens=2e9, inference_tokens=1e12, micro_batch=4)
    assert time.perf_counter() - start < 1.0


# --- model shape ----------------------------------------------------------------------------


def test_param_count_matches_llama_7b_and_13b():
    # Published counts of LLaMA-7B and -13B (untied head, RMSNorm weights, SwiGLU).
    assert ffn_hidden_for(4096) == 11008 and ffn_hidden_for(5120) == 13824
    llama_7b = ModelShape(n_layer=32, d_model=4096, n_head=32, vocab_size=32000, seq_len=2048,
                          ffn_hidden=11008)
    llama_13b = ModelShape(n_layer=40, d_model=5120, n_head=40, vocab_size=32000, seq_len=2048,
                           ffn_hidden=13824)
    assert param_count(llama_7b) == 6_738_415_616
    assert param_count(llama_13b) == 13_015_864_320
    tied = ModelShape(**{**llama_7b.to_dict(), "tie_embeddings": True})
    assert param_count(llama_7b) - param_count(tied) == 32000 * 4096
    assert param_breakdown(tied)["lm_head"] == 0


@pytest.mark.parametrize("target", [3e7, 1.25e8, 4e8, 1e9, 7e9, 7e10, 1e12])
def test_shape_for_params_hits_the_target_with_the_documented_rule(target):
    shape = shape_for_params(target, vocab_size=32000, seq_len=2048)
    assert close(param_count(shape), target, 0.02)
    assert shape.head_dim == (64 if shape.d_model <= 1024 else 128)
    assert shape.ffn_hidden == ffn_hidden_for(shape.d_model)
    if target >= 4e8:  # below, the embeddings leave too little room to choose the ratio
        ratio = shape.d_model / shape.n_layer
        assert 0.75 < ratio / (5.5 * target**0.125) < 1.33


def test_plan_reports_the_exact_count_of_its_shape():
    result = plan(flops=1e21)
    model = result.to_json()["model"]
    assert model["params_exact"] == param_count(ModelShape.from_dict(model))
    assert close(model["params_exact"], result.params, 0.02)


def test_tiny_budget_warns_that_the_vocabulary_dominates():
    result = plan(unique_tokens=1e6)
    assert result.params_exact > 10 * result.params
    assert any("embeddings dominate" in w for w in result.warnings)


# --- the command line -----------------------------------------------------------------------

JSON_KEYS = {"params", "tokens", "tokens_per_param", "flops", "pf_days", "gpu_hours", "epochs",
             "effective_tokens", "predicted_loss", "law", "model", "memory", "warnings"}


def test_cli_json_is_only_json_with_the_documented_keys(capsys):
    assert main(["plan", "--gpu", "h100", "--gpus", "8", "--hours", "24", "--mfu", "0.4",
                 "--unique-tokens", "2e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert JSON_KEYS <= set(out)
    model_keys = {"n_layer", "d_model", "n_head", "vocab_size", "seq_len", "params_exact"}
    assert model_keys <= set(out["model"])
    assert {"weights_gb", "gradients_gb", "optimizer_gb", "activations_gb", "total_gb_per_gpu",
            "precision", "sharding"} <= set(out["memory"])
    assert out["gpu_hours"] == pytest.approx(192) and out["law"] == "epoch"


def test_cli_table_is_aligned_text(capsys):
    assert main(["plan", "--flops", "1e21", "--unique-tokens", "2e10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dapt plan: Epoch AI refit")
    rows = [line for line in out.splitlines() if line.startswith("  ") and "GB" in line]
    assert len({line.index("GB") for line in rows}) == 1
    assert "warnings:" in out and "data-constrained" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["plan", "--flops", "1e21", "--hours", "2", "--gpu", "h100", "--gpus", "2"],
            "--flops and --hours",
        ),
        (["plan", "--gpu", "z80", "--flops", "1e21"], "invalid choice: 'z80'"),
        (["plan", "--gpus", "two", "--flops", "1e21"], "invalid int value"),
        (["plan"], "nothing to plan from"),
    ],
)
def test_cli_errors_are_one_line_exit_2(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err
    assert captured.err.startswith("dapt plan: error: ")


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "dapt plan --gpu h100" in out
    assert all(name in out for name in scaling.LAWS)


def test_cli_plot_writes_a_png(tmp_path, capsys):
    target = tmp_path / "plan.png"
    assert main(["plan", "--flops", "1e22", "--unique-tokens", "5e10", "--inference-tokens", "1e12",
                 "--plot", str(target), "--json"]) == 0
    json.loads(capsys.readouterr().out)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reads_the_plan_section_of_a_config(tmp_path, capsys):
    write_manifest(tmp_path, vocab_size=48_000)
    (tmp_path / "pipeline.yaml").write_text(
        "plan:\n  flops: 1e21\n  tokens_manifest: manifest.json\n  law: chinchilla-2\n"
    )
    config = str(tmp_path / "pipeline.yaml")
    assert main(["plan", "--config", config, "--law", "epoch", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "epoch" and out["unique_tokens"] == 3_000_000_000
    assert out["model"]["vocab_size"] == 48_000
    (tmp_path / "bad.yaml").write_text("plan:\n  flops: 1e21\n  gpu_count: 8\n")
    assert main(["plan", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert capsys.readouterr().err == "dapt plan: error: plan.gpu_count: unknown key\n"


def test_a_budget_too_small_for_any_model_is_one_error():
    with pytest.raises(PlanError, match="too small for any model"):
        plan(flops=10)
