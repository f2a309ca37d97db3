import pytest

from pipelines.config import ConfigError, load_config, parse_config

BASE = {"name": "fin", "path": "x.jsonl", "format": "jsonl", "domain": "finance"}


def test_unknown_key_is_one_line_naming_it():
    with pytest.raises(ConfigError) as err:
        parse_config({"corpora": [{**BASE, "fromat": "jsonl"}]})
    assert str(err.value) == "config: corpora[0].fromat: unknown key"


def test_wrong_type_and_enum_name_the_key_and_value():
    with pytest.raises(ConfigError) as err:
        parse_config({"corpora": [{**BASE, "format": "xml"}], "clean": {"docs_per_shard": "many"}})
    lines = str(err.value).splitlines()
    assert any(line.startswith("config: corpora[0].format:") and "'xml'" in line for line in lines)
    assert any(line.startswith("config: clean.docs_per_shard:") for line in lines)


def test_domain_overrides_validated_and_merged_over_builtin_profile():
    config = parse_config({"corpora": [BASE], "clean": {"domains": {"finance": {"boilerplate": {"min_docs": 9}}}}})
    profile = config.clean.profile("finance")
    assert profile.boilerplate.min_docs == 9 and profile.boilerplate.min_fraction == 0.05
    assert config.clean.profile("medical").clinical_dates is True
    assert config.clean.profile("law").filter_profile == "web"
    with pytest.raises(ConfigError) as err:
        parse_config({"corpora": [BASE], "clean": {"domains": {"finance": {"boilerplat": {}}}}})
    assert "domains.finance.boilerplat: unknown key" in str(err.value)


def test_dedup_bands_must_fit_permutations():
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        parse_config({"corpora": [BASE], "clean": {"dedup": {"num_perm": 64, "bands": 20, "rows": 8}}})


def test_duplicate_corpus_names_refused():
    with pytest.raises(ConfigError, match="repeated: fin"):
        parse_config({"corpora": [BASE, BASE]})


def test_yaml_paths_relative_to_file_and_bad_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("corpora:\n  - {name: a, path: data/*.jsonl, format: jsonl, domain: law}\n")
    config = load_config(tmp_path / "c.yaml")
    assert config.corpora[0].path == str(tmp_path / "data" / "*.jsonl")
    (tmp_path / "bad.yaml").write_text("corpora: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
