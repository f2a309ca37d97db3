
from pipelines.steps.markup import LEFTOVER_MARKUP, StripMarkup, strip_markup
from pipelines.steps.repair import Repair

REUTERS = (
    "&#2;\n<TITLE>STANDARD OIL &lt;SRD> TO FORM FINANCIAL UNIT</TITLE>\n<DATELINE>    CLEVELAND, Feb 26 - "
    "</DATELINE><BODY>Standard Oil Co and BP North America\nInc said they plan to form a venture.\n"
    "    BP North America is a subsidiary of British Petroleum Co\nPlc &lt;BP>, which owns 55 pct.\n"
    "\n Reuter\n&#3;</BODY>"
)


def _clean(text, title=None):
    return StripMarkup()(Repair()({"text": text, "title": title}))


def test_reuters_record_title_first_tags_gone_entities_decoded():
    doc = _clean(REUTERS, title="STANDARD OIL &lt;SRD> TO FORM FINANCIAL UNIT")
    assert doc["title"] == "STANDARD OIL <SRD> TO FORM FINANCIAL UNIT"
    assert doc["text"].startswith("STANDARD OIL <SRD> TO FORM FINANCIAL UNIT\n\nCLEVELAND, Feb 26 - Standard Oil Co")
    assert "Plc <BP>, which owns 55 pct." in doc["text"]
    assert not LEFTOVER_MARKUP.search(doc["text"])
    assert "&#" not in doc["text"] and "\x02" not in doc["text"] and "\x03" not in doc["text"]


def test_html_blocks_become_paragraphs_and_scripts_vanish():
    html = (
        "<html><head><title>Rates</title><style>p{color:red}</style></head><body>"
        "<h1>Outlook</h1><p>Rates rose 0.25%.</p><!-- nav --><script>var x=1;</script>"
        "<p>Yields &amp; spreads <b>widened</b>.</p></body></html>"
    )
    text, title = strip_markup(html)
    assert title == "Rates"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    assert lines == ["Outlook", "Rates rose 0.25%.", "Yields & spreads widened."]


def test_angle_brackets_that_are_content_survive():
    # PubMedQA writes "<or =" for the less-or-equal sign; abstracts write p<0.05.
    text = "Patients aged <or = 65 years (p<0.05) and a dose of <10 mg were included."
    assert strip_markup(text)[0] == text


def test_leftover_markup_pattern_flags_markup_not_tickers_or_placeholders():
    assert LEFTOVER_MARKUP.search("left </BODY> over")
    assert LEFTOVER_MARKUP.search('a <a href="x">link')
    assert LEFTOVER_MARKUP.search("an &amp; entity") and LEFTOVER_MARKUP.search("&#3;")
    assert not LEFTOVER_MARKUP.search("Plc <BP> and <I> and contact <EMAIL> at p<0.05")


def test_no_markup_left_in_real_finance_text(finance_docs):
    leftovers = []
    for d in finance_docs:
        doc = _clean(d["text"], d.get("title"))
        if LEFTOVER_MARKUP.search(doc["text"]):
            leftovers.append(d["id"])
    assert leftovers == []


def test_medical_text_without_markup_is_unchanged_by_markup_step(medical_docs):
    changed = 0
    for d in medical_docs[:3000]:
        before = Repair()({"text": d["text"], "title": None})["text"]
        after = StripMarkup()({"text": before, "title": None})["text"]
        changed += before != after
    assert changed == 0
