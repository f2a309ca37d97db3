"""The model against the planner's count, and the pieces of the training loop that need no
processes: schedule, early stopping, data slicing, checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pretrain import checkpoint as ckpt
from pretrain.data import DataError, TrainBatches, ValWindows, check_tokenizer, load_manifest
from pretrain.early_stopping import EarlyStopping
from pretrain.inference import _sample
from pretrain.model import GPT, apply_rope, rope_tables
from pretrain.schedule import PlateauScale, cosine_lr
from pretrain.shape import ModelShape, ffn_hidden_for, param_count, shape_for_params

TINY = ModelShape(n_layer=2, d_model=64, n_head=2, vocab_size=300, seq_len=32, ffn_hidden=ffn_hidden_for(64))


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_count_is_the_planners(tie):
    shape = ModelShape(**{**TINY.to_dict(), "tie_embeddings": tie})
    model = GPT(shape)
    assert sum(p.numel() for p in model.parameters()) == param_count(shape)


def test_parameter_count_of_a_planned_125m_shape():
    shape = shape_for_params(125e6, vocab_size=32000, seq_len=2048)
    with torch.device("meta"):
        model = GPT(shape)
    assert sum(p.numel() for p in model.parameters()) == param_count(shape)


def test_causal_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, TINY.vocab_size, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % TINY.vocab_size
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[0, :10], b[0, :10])
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_rope_scores_depend_on_relative_position_only():
    cos, sin = rope_tables(8, 64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i, j):
        qi = apply_rope(q.expand(1, 1, 64, 8), cos, sin)[0, 0, i]
        kj = apply_rope(k.expand(1, 1, 64, 8), cos, sin)[0, 0, j]
        return float(qi @ kj)

    assert score(5, 2) == pytest.approx(score(40, 37), rel=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), rel=1e-3)


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="exceeds seq_len 32"):
        GPT(TINY)(torch.zeros(1, 33, dtype=torch.long))


def test_warmup_then_cosine_to_the_minimum():
    lrs = [cosine_lr(s, 1.0, 0.1, warmup=10, horizon=110) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[110] == lrs[119] == 0.1


def test_early_stopping_reduces_the_rate_then_stops():
    stopper, plateau = EarlyStopping(patience=2, min_delta=0.01), PlateauScale(factor=0.5, max_reductions=1)
    decisions = [stopper.update(loss, step, plateau) for step, loss in enumerate([3.0, 2.5, 2.495, 2.6, 2.49, 2.5, 2.4])]
    assert [d.improved for d in decisions] == [True, True, False, False, False, False, True]
    assert [d.reduce_lr for d in decisions] == [False, False, False, True, False, False, False]
    assert plateau.scale == 0.5 and stopper.best_step == 6
    for loss in (2.4, 2.4):
        last = stopper.update(loss, 7, plateau)
    assert last.stop and not last.reduce_lr
    restored = EarlyStopping(patience=2, min_delta=0.01)
    restored.load_state_dict(json.loads(json.dumps(stopper.state_dict())))
    assert restored == stopper


def _token_dir(tmp_path, n_tokens=10_000, sha="ab" * 32):
    rng = np.random.default_rng(0)
    shards = []
    for split, n in (("train", n_tokens), ("train", 777), ("val", 2_000)):
        path = tmp_path / f"{split}-{len(shards)}.bin"
        rng.integers(0, 300, n).astype(np.uint16).tofile(path)
        shards.append({"path": path.name, "split": split, "tokens": n, "sha256": ""})
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"tokenizer_sha256": sha, "vocab_size": 300, "dtype": "uint16", "shards": shards}))
    return load_manifest(tmp_path)


def test_rank_slices_are_disjoint_and_make_up_the_global_batch(tmp_path):
    manifest = _token_dir(tmp_path)
    whole = TrainBatches(manifest, 32, 8, rank=0, world=1, seed=3)
    halves = [TrainBatches(manifest, 32, 8, rank=r, world=2, seed=3) for r in (0, 1)]
    seen = []
    for step in range(60):  # past one epoch of 334 windows
        parts = [h.indices(step) for h in halves]
        assert not set(parts[0]) & set(parts[1])
        assert parts[0] + parts[1] == whole.indices(step)
        seen += whole.indices(step)
    assert sorted(seen[:whole.windows.count]) == list(range(whole.windows.count))
    x, y = whole.get(5)
    assert x.shape == (8, 32) and torch.equal(x[:, 1:], y[:, :-1])
    assert TrainBatches(manifest, 32, 8, 0, 1, seed=4).indices(0) != whole.indices(0)


def test_windows_cross_shard_boundaries(tmp_path):
    manifest = _token_dir(tmp_path)
    batches = TrainBatches(manifest, 32, 1, 0, 1, seed=0)
    stream = np.concatenate([np.fromfile(p, dtype=np.uint16) for p in manifest.shards("train")])
    boundary = 10_000 // 32  # window 312 spans both train shards
    x, y = batches.windows.batch([boundary])
    assert x[0].tolist() == stream[boundary * 32 : boundary * 32 + 32].tolist()
    assert y[0, -1] == stream[boundary * 32 + 32]


def test_val_batches_split_evenly_over_ranks(tmp_path):
    manifest = _token_dir(tmp_path)
    counts = [sum(len(x) for x, _ in ValWindows(manifest, 32, 41, r, 2).batches(4)) for r in (0, 1)]
    assert counts == [20, 20]
    # Refused when made (the trainer makes it before its first step), not when first read.
    with pytest.raises(DataError, match=r"the val split has \d+ tokens, fewer than seq_len \+ 1 = 100001"):
        ValWindows(manifest, 100_000, 41, 0, 2)


def test_bad_token_dirs_are_refused(tmp_path):
    manifest = _token_dir(tmp_path)
    with pytest.raises(DataError, match="tokenizer sha256 ababababab"):
        check_tokenizer(manifest, "cd" * 32)
    (tmp_path / "train-0.bin").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="train-0.bin: 10 bytes"):
        load_manifest(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        load_manifest(tmp_path / "nowhere")


def test_top_k_and_top_p_keep_only_the_likely_tokens():
    logits = torch.tensor([5.0, 4.0, 0.0, -1.0, -2.0])
    g = torch.Generator().manual_seed(0)
    assert {_sample(logits, 1.0, 2, None, g) for _ in range(200)} == {0, 1}
    assert {_sample(logits, 1.0, None, 0.5, g) for _ in range(200)} == {0}
    assert _sample(logits, 0.0, None, None, g) == 0


@pytest.fixture
def process_group():
    from pretrain.parallelize import setup_distributed, teardown_distributed

    setup_distributed()
    yield
    teardown_distributed()


def test_checkpoint_round_trip_and_tampering(tmp_path, process_group):
    torch.manual_seed(0)
    shape = ModelShape(**{**TINY.to_dict(), "tie_embeddings": True})
    model = GPT(shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 300, (2, 8))).sum().backward()
    optimizer.step()
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        ckpt.save(root, step, model, optimizer, {"step": step}, rank=0, keep_last=2, best=step == 2)
    assert [p.name for p in ckpt.list_steps(root)] == ["step-00000002", "step-00000003"]
    assert ckpt.read_state(root / "best")["step"] == 2

    fresh = GPT(shape)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    assert ckpt.load(root / "step-00000003", fresh, fresh_opt, rank=0) == {"step": 3}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh.lm_head.weight is fresh.embed.weight
    moments = [s["exp_avg"] for s in fresh_opt.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(moments, [s["exp_avg"] for s in optimizer.state.values()]))

    weights = root / "step-00000003" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="model.safetensors: sha256 differs"):
        ckpt.load(root / "step-00000003", fresh, fresh_opt, rank=0)
    (root / "best" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ckpt.CheckpointError, match="extra.bin: not listed"):
        ckpt.load_weights(root / "best")
    assert math.isfinite(float(next(iter(ckpt.load_weights(root / "step-00000002").values())).sum()))
