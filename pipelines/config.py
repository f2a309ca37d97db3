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


class PipelineConfig(_Strict):
    # `validate` is the YAML key; the attribute may not shadow BaseModel.validate.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    corpora: list[CorpusConfig] = Field(min_length=1)
    clean: CleanConfig = CleanConfig()
    validation: ValidateConfig = Field(ValidateConfig(), alias="validate")
    tokenizer: TokenizerConfig = TokenizerConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    plan: PlanConfig | None = None

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
        lines.append(f"{where or '<top>'}: {message}{shown}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError("\n".join(f"{source}: {line}" for line in describe_errors(err).splitlines())) from None


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
                corpus["path"] = _resolve(corpus["path"], path.parent)
    return parse_config(data, source=str(path))


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value
