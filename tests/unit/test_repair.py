import unicodedata

from pipelines.steps.repair import Repair, normalize_whitespace, repair_text


def test_bom_crlf_and_controls_removed():
    assert repair_text("\ufeffHello\r\nWorld\x03\x7f\r\n") == "Hello\nWorld"


def test_cp1252_leftovers_and_mojibake_fixed():
    # FOMC minutes carry raw cp1252 bytes decoded as C1 controls (\x92 for a quote).
    assert repair_text("the Committee\x92s view") == "the Committee\u2019s view"
    assert repair_text("donâ€™t") == "don\u2019t"


def test_nfc_not_nfkc_keeps_numbers_units_and_math():
    text = "10\u00b2 mg/m\u00b3, \u00bd dose, 5 \u00b5g, H\u2082O, \ufb01nal"
    out = repair_text(text)
    assert "10\u00b2" in out and "\u00bd" in out and "\u00b5g" in out and "H\u2082O" in out
    assert out == unicodedata.normalize("NFC", out)
    # Decomposed input is composed (NFC): e + combining acute becomes é.
    assert repair_text("cafe\u0301") == "caf\u00e9"


def test_whitespace_layout_noise_collapsed_but_paragraphs_kept():
    text = "Key Points          -   First point.\n\n\n\n    Second   paragraph.  \n"
    assert normalize_whitespace(text) == "Key Points - First point.\n\nSecond paragraph."


def test_repair_transform_touches_text_and_title(finance_docs):
    fomc = next(d for d in finance_docs if d["source"] == "fomc_minutes" and d["text"].startswith("\ufeff"))
    doc = Repair()({"text": fomc["text"], "title": "Minutes\ufeff"})
    assert not doc["text"].startswith("\ufeff") and doc["title"] == "Minutes"
    assert not any(0x80 <= ord(c) <= 0x9F for c in doc["text"])
