"""The one validated configuration schema of dapt.

A pipeline YAML holds ``corpora`` (what to read) and one section per stage. Every model
forbids unknown keys, so a typo is reported as one line naming the key
(``corpora[0].fromat: unknown key``) instead of being silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pretrain.planner import PlanConfig
from tokenizer.config import TokenizeConfig, TokenizerConfig
from validation.config import ValidateConfig


class ConfigError(ValueError):
    """A configuration problem, already phrased for the user (one line per problem)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusConfig(_Strict):
    """One raw corpus: where it is, how to read it and what its documents are."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    path: str | list[str] = Field(description="file, folder or glob; any Apache Beam filesystem URI")
    format: Literal["jsonl", "jsonl.gz", "parquet", "txt"]
    domain: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    text_field: str = "text"
    id_field: str | None = Field(None, description="else a stable id from source file + position")
    source_field: str | None = Field("source", description="record field naming the upstream source; else the corpus name")
    title_field: str | None = None
    metadata_fields: list[str] | None = Field(None, description="pass-through fields; None = every other field")
    encoding: str = "utf-8"
    #: A JSONL line or a txt file longer than this is quarantined, read past without being
    #: held: a gzip of a few hundred kilobytes can inflate to one line of gigabytes.
    max_record_bytes: int = Field(64 * 2**20, gt=0)

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as err:
            raise ValueError(f"unknown text encoding {value!r}") from err
        return value


class BoilerplateConfig(_Strict):
    """See :mod:`pipelines.steps.boilerplate` for the defaults' source."""

    min_fraction: float = Field(0.01, gt=0, le=1)
    min_docs: int = Field(5, ge=2)
    min_line_chars: int = Field(6, ge=1)


class LanguageConfig(_Strict):
    """See :class:`pipelines.steps.language.LanguageFilter`."""

    allowed: list[str] = ["en"]
    min_score: float = Field(0.65, ge=0, le=1)
    min_chars: int = Field(20, ge=0)


class DomainProfile(_Strict):
    """Per-domain choices; unset fields fall back to the built-in profile of the domain."""

    filter_profile: str = "web"
    filters: dict[str, dict[str, Any]] = {}
    boilerplate: BoilerplateConfig = BoilerplateConfig()
    language: LanguageConfig = LanguageConfig()
    clinical_dates: bool = False


BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    # Earnings tables repeat row labels ("Nine mths" in 2% of Reuters items) that must
    # stay; the real sign-offs ("Reuter" 66%, "REUTER" 21%, "******" 8%) are far above 5%.
    "finance": {"filter_profile": "finance", "boilerplate": {"min_fraction": 0.05}},
    # Dates next to clinical content are PHI under HIPAA Safe Harbor; in finance they
    # are fiscal dates and must survive.
    "medical": {"filter_profile": "medical", "clinical_dates": True},
}


class DedupConfig(_Strict):
    """Exact and near (MinHash LSH) dedup across all corpora of a run.

    Defaults: see :class:`pipelines.dedup.NearDedup` for their sources.
    """

    exact: bool = True
    near: bool = True
    shingle_size: int = Field(5, ge=1)
    num_perm: int = Field(112, ge=8)
    bands: int = Field(14, ge=1)
    rows: int = Field(8, ge=1)
    seed: int = 1

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


#: Documents per Beam element in the cleaning job (:mod:`pipelines.batch`): large enough
#: that Beam's per-element costs vanish next to the work on the documents, small enough
#: that a file's batches spread over workers.
DOC_BATCH_SIZE = 512


class CleanConfig(_Strict):
    """Settings of ``dapt corpus clean``."""

    boilerplate: BoilerplateConfig = BoilerplateConfig()
    language: LanguageConfig = LanguageConfig()
    pii: bool = True
    dedup: DedupConfig = DedupConfig()
    domains: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-domain overrides of DomainProfile fields"
    )
    docs_per_shard: int = Field(50_000, ge=1)
    batch_size: int = Field(
        DOC_BATCH_SIZE, ge=1, description="documents per Beam element (pipelines.batch); the output does not depend on it"
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"

    @model_validator(mode="after")
    def _profiles_valid(self) -> CleanConfig:
        for domain in self.domains:
            self.profile(domain)
        return self

    def profile(self, domain: str) -> DomainProfile:
        """The effective profile: defaults < built-in domain profile < user overrides."""
        merged: dict[str, Any] = {
            "boilerplate": self.boilerplate.model_dump(),
            "language": self.language.model_dump(),
        }
        for layer in (BUILTIN_PROFILES.get(domain, {}), self.domains.get(domain, {})):
            merged = deep_merge(merged, layer)
        try:
            return DomainProfile.model_validate(merged)
        except ValidationError as err:
            raise ValueError(describe_errors(err, prefix=f"domains.{domain}")) from None


class RunConfig(_Strict):
    """Settings of ``dapt run`` itself (flags override them)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="default: the YAML's file name")
    workdir: str | None = Field(None, description="stage outputs, dedup index, lock; default out/<name>")
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "dapt"
    nproc_per_node: int = Field(1, ge=1, description="training processes (torchrun when > 1)")


class RegisterConfig(_Strict):
    """The ``register`` stage: the trained model into the MLflow Model Registry."""

    name: str = "dapt"
    alias: str = "candidate"


#: Keys of ``train:`` that ``dapt run`` sets from the other stages.
FLOW_TRAIN_KEYS = ("tokens", "tokenizer", "output", "plan", "mlflow_run_id", "tracking_uri", "experiment", "register_as")


class PipelineConfig(_Strict):
    # `validate` is the YAML key; the attribute may not shadow BaseModel.validate.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    corpora: list[CorpusConfig] = Field(min_length=1)
    clean: CleanConfig = CleanConfig()
    validation: ValidateConfig = Field(ValidateConfig(), alias="validate")
    tokenizer: TokenizerConfig = TokenizerConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    plan: PlanConfig | None = None
    train: dict[str, Any] = Field(default_factory=dict, description="pretrain.train.TrainConfig keys, less the paths")
    # `register` is the YAML key; the attribute may not shadow ABCMeta.register.
    registration: RegisterConfig = Field(RegisterConfig(), alias="register")
    run: RunConfig = RunConfig()

    def train_config(self, **paths: Any):
        """The :class:`~pretrain.train.TrainConfig` of the ``train:`` section with the
        paths (and run ids) that ``dapt run`` supplies; the model shape comes from the
        plan unless the section gives ``model:``."""
        from pretrain.train import TrainConfig

        data = {**self.train, **paths}
        if "model" in self.train:
            data.pop("plan", None)
        return TrainConfig.model_validate(data)

    @model_validator(mode="after")
    def _train_section_valid(self) -> PipelineConfig:
        taken = sorted(set(self.train) & set(FLOW_TRAIN_KEYS))
        if taken:
            raise ValueError(f"train: {', '.join(taken)} are set by dapt run from the other stages; remove them")
        try:
            self.train_config(tokens="-", tokenizer="-", output="-", plan="-")
        except ValidationError as err:
            raise ValueError(describe_errors(err, prefix="train").replace("\n", "; ")) from None
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineConfig:
        names = [c.name for c in self.corpora]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"corpus names must be unique, repeated: {', '.join(dupes)}")
        return self


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


#: A validator message that starts with the key it is about (``domains.medical.text_length: ...``).
_KEY_FIRST = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*: ")


def describe_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for problem in err.errors():
        where = prefix
        for part in problem["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = re.sub(r"^Value error, ", "", problem["msg"])
        value = problem.get("input")
        shown = "" if problem["type"] in ("extra_forbidden", "missing") or isinstance(value, dict) else f" (got {value!r})"
        # A model-level message already names its keys ("train.lr: ..."), relative to where
        # the model sits: "validate" + "domains.x.min: ..." is "validate.domains.x.min: ...".
        if not where:
            lines.append(f"{message}{shown}")
        elif problem["type"] == "value_error" and _KEY_FIRST.match(message):
            lines.append(f"{where}.{message}{shown}")
        else:
            lines.append(f"{where}: {message}{shown}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> PipelineConfig:
    """Validate a pipeline config. A corpus given as ``{registered: NAME}`` is read from
    the corpus registry (``dapt corpus add``; ``DAPT_REGISTRY`` names its file)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    if isinstance(data.get("corpora"), list) and any(_registered(c) for c in data["corpora"]):
        from pipelines.registry import Registry

        registry = Registry()
        data = {**data, "corpora": [
            registry.corpus_config(c["registered"]).model_dump() if _registered(c) else c for c in data["corpora"]
        ]}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError("\n".join(f"{source}: {line}" for line in describe_errors(err).splitlines())) from None


def _registered(corpus: Any) -> bool:
    return isinstance(corpus, dict) and set(corpus) == {"registered"}


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML. Relative corpus paths are relative to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    if isinstance(data, dict) and isinstance(data.get("corpora"), list):
        for corpus in data["corpora"]:
            if isinstance(corpus, dict) and "path" in corpus:
                corpus["path"] = resolve_paths(corpus["path"], path.parent)
    return parse_config(data, source=str(path))


def resolve_paths(value: Any, base: Path) -> Any:
    """Local paths (one or a list) made absolute against ``base``; URIs left alone."""
    if isinstance(value, list):
        return [resolve_paths(v, base) for v in value]
    if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value
