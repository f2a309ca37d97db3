"""Generate and score text with a trained model and the frozen tokenizer it was trained with.

A model is a run directory (its ``checkpoints/best``, else the latest step, and its copy
of the tokenizer bundle) or a registered model ``models:/NAME@ALIAS``. The tokenizer always
comes through :func:`tokenizer.bundle.load_tokenizer` (which verifies its sha256), and its
sha256 must be the one recorded in the checkpoint: a model is never run with another
tokenizer than its own.

Training saw documents one after another, each ending in EOS; so a prompt or a scored
document starts after an EOS, as every training document did, and generation stops at EOS.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from pretrain import checkpoint as ckpt
from pretrain.model import GPT
from pretrain.shape import ModelShape


class InferenceError(ValueError):
    """A model or tokenizer that cannot be used, phrased as one line."""


def checkpoint_dir(rundir: Path) -> Path:
    """``best`` when the run evaluated at least once, else its latest complete step."""
    root = rundir / "checkpoints"
    if (root / "best" / ckpt.MANIFEST).is_file():
        return root / "best"
    steps = ckpt.list_steps(root)
    if not steps:
        raise InferenceError(f"{rundir}: no checkpoint (not a dapt train run directory?)")
    return steps[-1]


class LanguageModel:
    def __init__(self, model: GPT, tokenizer, device: torch.device):
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device

    @classmethod
    def from_checkpoint(cls, directory: Path, bundle: str, device: str = "cpu") -> LanguageModel:
        from tokenizer.bundle import BundleError, load_tokenizer

        try:
            state = ckpt.read_state(directory)
            weights = ckpt.load_weights(directory)
        except ckpt.CheckpointError as exc:
            raise InferenceError(str(exc)) from None
        try:
            tokenizer = load_tokenizer(str(bundle))
        except BundleError as exc:
            raise InferenceError(str(exc)) from None
        if tokenizer.sha256 != state["tokenizer_sha256"]:
            raise InferenceError(
                f"{bundle}: tokenizer sha256 {tokenizer.sha256[:12]}... is not the one the model was trained with "
                f"({state['tokenizer_sha256'][:12]}..., recorded in {directory / 'state.json'})"
            )
        model = GPT(ModelShape.from_dict(state["model_shape"]))
        model.load_state_dict(weights, strict=True)
        return cls(model.to(device), tokenizer, torch.device(device))

    def _ids(self, text: str) -> list[int]:
        return [self.tokenizer.eos_id, *self.tokenizer.encode([text])[0].tolist()]

    @torch.no_grad()
    def generate(
        self, prompts: list[str], max_new_tokens: int = 64, temperature: float = 1.0,
        top_k: int | None = None, top_p: float | None = None, seed: int = 0,
    ) -> list[str]:
        """Continuations of each prompt (without the prompt); ``temperature=0`` is greedy."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        window = self.model.shape.seq_len
        out = []
        for prompt in prompts:
            ids = self._ids(prompt)
            new: list[int] = []
            for _ in range(max_new_tokens):
                context = torch.tensor([(ids + new)[-window:]], device=self.device)
                logits = self.model(context)[0, -1].float()
                token = _sample(logits, temperature, top_k, top_p, generator)
                if token == self.tokenizer.eos_id:
                    break
                new.append(token)
            out.append(self.tokenizer.decode(new))
        return out

    @torch.no_grad()
    def score(self, texts: list[str]) -> list[dict]:
        """Per document: tokens scored (its EOS included), mean loss in nats, perplexity.
        Documents longer than the context are scored in consecutive windows."""
        window = self.model.shape.seq_len
        results = []
        for text in texts:
            ids = torch.tensor(self._ids(text) + [self.tokenizer.eos_id], device=self.device)
            total, count = 0.0, 0
            for start in range(0, len(ids) - 1, window):
                chunk = ids[start : start + window + 1]
                logits = self.model(chunk[None, :-1])[0].float()
                total += torch.nn.functional.cross_entropy(logits, chunk[1:], reduction="sum").item()
                count += len(chunk) - 1
            loss = total / count
            results.append({"tokens": count, "loss": loss, "perplexity": math.exp(min(loss, 700.0))})
        return results


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None, generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        drop = cumulative - torch.softmax(sorted_logits, -1) >= top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), -math.inf)
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))


def load(model_ref: str, tokenizer: str | None = None, device: str = "cpu") -> LanguageModel:
    """A run directory or ``models:/NAME@ALIAS``; ``tokenizer`` (a bundle) must be the
    model's own: it is checked, never substituted."""
    if model_ref.startswith("models:/"):
        import mlflow

        try:
            pyfunc = mlflow.pyfunc.load_model(model_ref)
        except Exception as exc:
            raise InferenceError(f"{model_ref}: cannot load from MLflow: {exc}".splitlines()[0]) from None
        lm = pyfunc.unwrap_python_model().lm
        if tokenizer:
            _check_same_tokenizer(tokenizer, lm.tokenizer.sha256, model_ref)
        return lm
    rundir = Path(model_ref)
    directory = checkpoint_dir(rundir)
    return LanguageModel.from_checkpoint(directory, tokenizer or str(rundir / "tokenizer"), device)


def _check_same_tokenizer(bundle: str, expected: str, model_ref: str) -> None:
    manifest = json.loads((Path(bundle) / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("sha256") != expected:
        raise InferenceError(f"{bundle}: not the tokenizer {model_ref} was trained with")
