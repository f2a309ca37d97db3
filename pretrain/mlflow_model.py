"""The MLflow pyfunc of a trained model, logged as "models from code": MLflow runs this
file at load time instead of unpickling an object.

Input: a list of strings or a DataFrame with a ``text`` column. ``params``: ``task``
(``generate`` returns one continuation per text; ``score`` returns ``tokens``, ``loss``,
``perplexity`` per text), ``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``seed``.
The artifacts are the best checkpoint and the tokenizer bundle, checked against each other
by :meth:`pretrain.inference.LanguageModel.from_checkpoint`.
"""

from __future__ import annotations

import mlflow

DEFAULT_PARAMS = {"task": "generate", "max_new_tokens": 32, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "seed": 0}


def requirements() -> list[str]:
    import importlib.metadata as md

    return [f"{name}=={md.version(name)}" for name in ("torch", "safetensors", "sentencepiece", "numpy", "mlflow")]


class DaptLanguageModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pathlib import Path

        from pretrain.inference import LanguageModel

        self.lm = LanguageModel.from_checkpoint(Path(context.artifacts["checkpoint"]), context.artifacts["tokenizer"])

    def predict(self, context, model_input, params=None):
        params = {**DEFAULT_PARAMS, **(params or {})}
        if hasattr(model_input, "columns"):
            column = "text" if "text" in model_input.columns else model_input.columns[0]
            texts = [str(t) for t in model_input[column]]
        else:
            texts = [str(t) for t in model_input]
        if params["task"] == "score":
            return self.lm.score(texts)
        return self.lm.generate(
            texts, max_new_tokens=int(params["max_new_tokens"]), temperature=float(params["temperature"]),
            top_k=int(params["top_k"]) or None, top_p=float(params["top_p"]), seed=int(params["seed"]),
        )


mlflow.models.set_model(DaptLanguageModel())
