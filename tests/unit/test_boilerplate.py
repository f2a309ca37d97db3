from collections import Counter

from pipelines.steps.boilerplate import RemoveBoilerplate, boilerplate_threshold, distinct_lines, frequent_lines
from pipelines.steps.markup import StripMarkup
from pipelines.steps.repair import Repair


def _prepared(docs):
    return [StripMarkup()(Repair()(dict(d))) for d in docs]


def _frequent(docs, thresholds):
    counts = Counter()
    per_source = Counter((d["domain"], d["source"]) for d in docs)
    for d in docs:
        counts.update(distinct_lines(d))
    return frequent_lines(counts.items(), per_source, thresholds)


def test_threshold_has_a_floor():
    assert boilerplate_threshold(100, 0.01, 5) == 5
    assert boilerplate_threshold(10_839, 0.05, 5) == 542


def test_single_line_bodies_do_not_vote():
    docs = [{"domain": "d", "source": "s", "title": None, "text": "same answer"} for _ in range(50)]
    assert list(distinct_lines(docs[0])) == []
    titled = {"domain": "d", "source": "s", "title": "T", "text": "T\n\nBlah blah blah."}
    assert list(distinct_lines(titled)) == []
    flash = {"domain": "d", "source": "s", "title": "T", "text": "T\n\n*******\nBlah blah blah."}
    assert list(distinct_lines(flash)) == []


def test_reuters_signoff_found_and_removed_but_table_rows_stay(finance_docs):
    docs = _prepared(d | {"domain": "finance"} for d in finance_docs if d["source"] == "reuters21578")
    frequent = _frequent(docs, {"finance": (0.05, 5)})
    lines = frequent[("finance", "reuters21578")]
    assert {"Reuter", "REUTER"} <= lines
    assert "Nine mths" not in lines and "Blah blah blah." not in lines
    remover = RemoveBoilerplate()
    cleaned = [remover(dict(d), frequent) for d in docs]
    # Placeholder items are not stripped to their headline: the filters must see them.
    assert all(d["text"].endswith("Blah blah blah.") for d in cleaned if "Blah blah blah." in d["text"])
    signed = sum(1 for d in cleaned if d["text"].rstrip().endswith(("\nReuter", "\nREUTER")))
    assert signed == 0
    table = next(d for d in cleaned if "Shr 34 cts vs 1.19 dlrs" in d["text"])
    assert "Net 807,000 vs 2,858,000" in table["text"]


def test_web_default_threshold_would_eat_table_labels(finance_docs):
    # Why finance raises the fraction to 5%: at 1%, earnings-table row labels qualify.
    docs = _prepared(d | {"domain": "finance"} for d in finance_docs if d["source"] == "reuters21578")
    lines = _frequent(docs, {"finance": (0.01, 5)})[("finance", "reuters21578")]
    assert "Nine mths" in lines


def test_removal_never_empties_a_document():
    doc = {"domain": "d", "source": "s", "text": "Reuter\nREUTER"}
    out = RemoveBoilerplate()(dict(doc), {("d", "s"): frozenset({"Reuter", "REUTER"})})
    assert out["text"] == "Reuter\nREUTER"
