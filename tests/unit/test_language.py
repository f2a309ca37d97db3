from pipelines.steps.language import LanguageFilter, identify


def test_identifies_common_languages_offline():
    assert identify("The committee agreed to keep the target rate unchanged this quarter.")[0] == "en"
    assert identify("El comité acordó mantener sin cambios la tasa de interés este trimestre.")[0] == "es"
    assert identify("Le comité a décidé de maintenir le taux directeur inchangé ce trimestre.")[0] == "fr"


def test_off_target_language_dropped_with_reason():
    f = LanguageFilter(allowed=("en",))
    doc = {"text": "Der Ausschuss beschloss, den Leitzins in diesem Quartal unverändert zu lassen."}
    reason, detail = f.check(doc)
    assert reason == "language" and detail.startswith("de ")
    assert doc["language"] == "de"


def test_low_confidence_tables_kept_as_undetermined():
    f = LanguageFilter(allowed=("en",))
    doc = {"text": "Shr 34 cts vs 1.19 dlrs\nNet 807,000 vs 2,858,000\nAssets 510.2 mln vs 479.7 mln"}
    assert f.check(doc) is None
    assert doc["language"] in ("en", "und")


def test_real_samples_are_english(finance_docs, medical_docs):
    f = LanguageFilter(allowed=("en",))
    dropped = [d["id"] for d in finance_docs[:2000] + medical_docs[:2000] if f.check({"text": d["text"]})]
    assert len(dropped) <= 4, dropped
