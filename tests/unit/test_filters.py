"""Quality filters and per-domain profiles: crafted cases, then the real samples."""

from __future__ import annotations

import copy
import random
import re
from collections import Counter

import pytest

from pipelines.steps.filters import (
    C4Filter,
    EmptyFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    MinLengthFilter,
    PlaceholderFilter,
    split_words,
)
from pipelines.steps.profiles import FILTERS, PROFILES, build_filters

PROSE = (
    "The committee met on Tuesday to review the outlook for the economy and the labor "
    "market. Members noted that inflation had eased over the past year, although it "
    "remained above the longer-run goal. They agreed that the stance of policy was "
    "appropriate and that further data would be needed before any change. Several "
    "participants pointed to risks from weaker growth abroad and tighter credit at home, "
    "while others saw strength in household spending."
)


def doc(text: str) -> dict:
    return {"id": "t", "text": text, "domain": "web", "source": "test"}


def verdict(step, text: str):
    """``None`` when kept, else ``(reason, detail)``."""
    return step.check(doc(text))


# --- crafted cases, one filter at a time ---------------------------------------------


def test_split_words_is_whitespace_tokens():
    assert split_words(" Net  692,000\tvs\n617,000 ") == ("Net", "692,000", "vs", "617,000")


def test_empty():
    f = EmptyFilter()
    assert verdict(f, "") == ("empty", "empty text")
    assert verdict(f, " \n\t ") == ("empty", "whitespace-only text (4 chars)")
    assert verdict(f, "x") is None


def test_min_length():
    f = MinLengthFilter()
    assert verdict(f, "Net loss") == ("min_length", "8 chars < 20")
    assert verdict(f, "Frequently Asked Queestions (FAQs)") == ("min_length", "4 words < 5")
    assert verdict(f, "MOODY'S COMMODITY INDEX-APR 07\n  926.0") is None
    assert verdict(f, "The prevalence of BPES is unknown.") is None
    assert verdict(MinLengthFilter(min_words=8), "The prevalence of BPES is unknown.") == ("min_length", "6 words < 8")


@pytest.mark.parametrize(
    "text",
    [
        "ASSETS OF MONEY MARKET FUNDS ROSE\n\n******Blah blah blah.",
        "ASSETS OF MONEY MARKET FUNDS ROSE\n\n******\nBlah blah blah.",  # the markup step's layout
        "Blah blah blah.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
        "Upcoming events\n\nTBD",
        "[deleted]",
        "Product page\n\nNo text available.",
        "Coming soon!!!",
    ],
)
def test_placeholder_drops(text):
    reason, detail = verdict(PlaceholderFilter(), text)
    assert reason == "placeholder"
    assert detail.startswith("placeholder body ")


def test_placeholder_detail_shows_the_body():
    text = "ASSETS OF MONEY MARKET FUNDS ROSE\n\nBlah blah blah."
    assert verdict(PlaceholderFilter(), text) == ("placeholder", "placeholder body 'Blah blah blah.'")


@pytest.mark.parametrize(
    "text",
    [
        "Blah blah blah, critics said of the plan, which the board approved on Monday.",
        "U.S. COMMERCIAL PAPER FALLS 375 MLN DLRS IN FEB 18 WEEK, FED SAYS",
        # A multi-line first paragraph is content, so what follows it is not a "body".
        "Shr 31 cts vs 28 cts\nNet 692,000 vs 617,000\n\nTBD",
        "Is it inherited? This condition is inherited in an autosomal recessive pattern.",
    ],
)
def test_placeholder_keeps(text):
    assert verdict(PlaceholderFilter(), text) is None


def test_placeholder_lone_question():
    text = "What are the symptoms of Bell's palsy?"
    assert verdict(PlaceholderFilter(), text) == ("placeholder", f"lone question {text!r}")
    assert verdict(PlaceholderFilter(drop_lone_question=False), text) is None


N_PROSE = len(PROSE.split())


def test_gopher_quality_keeps_prose():
    assert verdict(GopherQualityFilter(), PROSE) is None


def _lines_of(prose: str) -> list[str]:
    return [s.rstrip(".") for s in prose.split(". ")]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (" ".join(PROSE.split()[:49]), "word count 49 < 50"),
        (" ".join(["a", "an", "of", "to"] * 20), "mean word length 1.75 < 3"),
        # (20 + 2 + 3 + 16) / 4 chars
        (" ".join(["internationalization", "of", "the", "responsibilities"] * 15), "mean word length 10.2 > 10"),
        (PROSE + " #tag" * 20, f"hash-to-word ratio {20 / (N_PROSE + 20):.3g} > 0.1"),
        (PROSE + " wait... what" * 12, f"ellipsis-to-word ratio {12 / (N_PROSE + 24):.3g} > 0.1"),
        ("\n".join(f"- {line}" for line in _lines_of(PROSE)), "bullet-line ratio 1 > 0.9"),
        ("\n".join(f"{line}..." for line in _lines_of(PROSE)), "ellipsis-line ratio 1 > 0.3"),
        (PROSE + " 1,234" * 30, f"alphabetic-word ratio {N_PROSE / (N_PROSE + 30):.3g} < 0.8"),
        (re.sub(r"\b(?:the|be|to|of|and|that|have|with)\b", "our", PROSE, flags=re.I), "stop words 0 < 2"),
    ],
)
def test_gopher_quality_rules(text, detail):
    assert verdict(GopherQualityFilter(), text) == ("gopher_quality", detail)


def test_gopher_quality_ellipsis_definition():
    # Seven ellipses in 87 words stay under 0.1 ...
    assert verdict(GopherQualityFilter(), PROSE + " wait... what" * 7) is None
    # ... and dot leaders ("total........49.0") are table layout, not ellipses.
    table = "\n".join(f"Item {i} total........{i * 7}.0 vs....{i * 3}.5 the" for i in range(20))
    assert verdict(GopherQualityFilter(min_doc_words=None, min_alpha_words_ratio=0.3), table) is None
    assert verdict(GopherQualityFilter(), "\n".join(f"{line}...." for line in _lines_of(PROSE))) is None


def test_gopher_quality_switch_off():
    short = "The cause of most childhood brain tumors is not known."
    assert verdict(GopherQualityFilter(), short) == ("gopher_quality", "word count 10 < 50")
    assert verdict(GopherQualityFilter(min_doc_words=None), short) is None


def test_gopher_repetition_keeps_prose():
    assert verdict(GopherRepetitionFilter(), PROSE) is None


UNIQUE = [f"w{i:02d}" for i in range(40)]  # 40 distinct 3-character words


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("\n".join(["Buy now"] * 3 + ["Fresh fruit daily", "Call us"]), "duplicate line fraction 0.4 > 0.3"),
        # One copy of a 35-char line among 8 lines of 13 chars: 35 / (2 * 35 + 8 * 13).
        (
            "\n".join(["Special offers on fresh fruit today"] * 2 + [f"line number {i}" for i in range(8)]),
            "duplicate line char fraction 0.201 > 0.2",
        ),
        # One copy among 3 paragraphs; its single line is a small share of 12 lines.
        (
            "\n\n".join(["Short one."] * 2 + ["\n".join(f"A longer line of its own, number {i}" for i in range(10))]),
            "duplicate paragraph fraction 0.333 > 0.3",
        ),
        # "alpha beta" 10 times (90 chars) among 10 unique 12-char words: 90 / 210.
        (" ".join(f"alpha beta uniqueword{i:02d}" for i in range(10)), "top 2-gram char fraction 0.429 > 0.2"),
        # The first 10 of 40 equal-length words repeated: 10 / 50 words are copies, while
        # the top 4-gram covers 8 / 50 = 0.16, not above its 0.16.
        (" ".join(UNIQUE + UNIQUE[:10]), "duplicate 5-gram char fraction 0.2 > 0.15"),
    ],
)
def test_gopher_repetition_rules(text, detail):
    assert verdict(GopherRepetitionFilter(), text) == ("gopher_repetition", detail)


def test_gopher_repetition_top_ngram_min_words():
    # A real 33-word GHR answer: the disease name twice is 50 of 182 characters.
    text = (
        "Isolated congenital hepatic fibrosis is rare. Its prevalence is unknown. The total "
        "prevalence of syndromes that include congenital hepatic fibrosis as a feature is "
        "estimated to be 1 in 10,000 to 20,000 individuals."
    )
    assert verdict(GopherRepetitionFilter(), text) == ("gopher_repetition", "top 3-gram char fraction 0.275 > 0.18")
    assert verdict(GopherRepetitionFilter(top_ngram_min_words=50), text) is None
    # The duplicate n-gram rules still apply to short texts.
    assert verdict(GopherRepetitionFilter(top_ngram_min_words=50), " ".join(UNIQUE[:20] + UNIQUE[:10]))


def _reference_ngram_fractions(words: list[str]) -> tuple[dict[int, float], dict[int, float]]:
    """Gopher n-gram statistics computed the plain way, to check the fast path against."""
    total = sum(map(len, words))
    top, dup = {}, {}
    for n in range(2, 11):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        if n <= 4:
            best = max(counts.values(), default=0)
            top[n] = 0.0 if best < 2 else best * max(len("".join(g)) for g in counts if counts[g] == best) / total
        else:
            covered, seen = set(), set()
            for i, g in enumerate(grams):
                if g in seen:
                    covered.update(range(i, i + n))
                seen.add(g)
            dup[n] = sum(len(words[i]) for i in covered) / total
    return top, dup


def test_gopher_repetition_fast_path_matches_reference():
    """The bounds, early exits and candidate pruning must not change any verdict."""
    f = GopherRepetitionFilter(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None)
    rng = random.Random(7)
    fired = 0
    for _ in range(400):
        vocab = [f"w{i}" * rng.randint(1, 4) for i in range(rng.choice([3, 8, 30, 200]))]
        words = [rng.choice(vocab) for _ in range(rng.randint(5, 150))]
        if rng.random() < 0.5:  # paste a copied span, the usual shape of real repetition
            i, j = sorted(rng.sample(range(len(words)), 2))
            words[j:j] = words[i : i + rng.randint(5, 20)]
        top, dup = _reference_ngram_fractions(words)
        expected = next(
            (f"top {n}-gram" for n, t in f.top_ngram_char_frac.items() if top[n] > t),
            next((f"duplicate {n}-gram" for n, t in f.dup_ngram_char_frac.items() if dup[n] > t), None),
        )
        got = verdict(f, " ".join(words))
        assert (got and got[1].split(" char")[0]) == (expected or None), words
        fired += expected is not None
    assert 50 < fired < 350  # both outcomes well represented


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Welcome!\n\nLorem ipsum dolor sit amet.\n\n" + PROSE, "contains 'lorem ipsum'"),
        (PROSE + "\nfunction f() { return 1; }", "contains '{'"),
        ("Home\nAbout us\nContact\nShop", "0 sentences in 0 C4-kept lines < 3"),
        # Three sentence lines, two of which C4 removes.
        (
            "Please enable JavaScript to view this page properly, thank you.\n"
            "Read our privacy policy before you continue with the site.\n"
            "This article is about the economy.",
            "1 sentences in 1 C4-kept lines < 3",
        ),
        # Hard-wrapped newswire: only paragraph-final lines end in punctuation.
        (
            "CLEVELAND, Feb 26 - Standard Oil Co and BP North America\n"
            "Inc said they plan to form a venture to manage the money market\n"
            "borrowing and investment activities of both companies.",
            "1 sentences in 1 C4-kept lines < 3",
        ),
    ],
)
def test_c4_drops(text, detail):
    assert verdict(C4Filter(), text) == ("c4", detail)


def test_c4_keeps_and_never_rewrites():
    page = PROSE.replace(". ", ".\n") + "\nAccept cookies? We use cookies."
    d = doc(page)
    before = copy.deepcopy(d)
    assert C4Filter().check(d) is None
    assert d == before
    wrapped = "Inc said they plan to form a venture to manage the money market\nborrowing."
    assert verdict(C4Filter(min_sentences=None), wrapped) is None


FIRST_SENTENCE = PROSE.split(". ")[0] + "."


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Home\nNews\n" + "Shr 31 cts vs 28 cts\n" * 2 + "Net 692,000 vs 617,000", "line punctuation ratio 0 <= 0.12"),
        ("Intro.\nA\nB\nC", "short-line ratio 1 >= 0.67"),
        (
            "\n".join([PROSE, FIRST_SENTENCE, FIRST_SENTENCE]),
            f"duplicate-line char ratio {len(FIRST_SENTENCE) / (len(PROSE) + 2 * len(FIRST_SENTENCE)):.3g} >= 0.1",
        ),
        # Ten one-word lines of 31 characters: long lines, but a list.
        ("\n".join(f"Antidisestablishmentarianism{i:02d}." for i in range(10)), "newline-to-word ratio 0.9 > 0.3"),
    ],
)
def test_fineweb(text, detail):
    assert verdict(FineWebQualityFilter(), text) == ("fineweb_quality", detail)


def test_fineweb_keeps_prose():
    assert verdict(FineWebQualityFilter(), PROSE.replace(". ", ".\n")) is None


def test_filters_never_mutate():
    d = doc("TITLE\n\n" + PROSE + "\n" + PROSE)
    before = copy.deepcopy(d)
    for f in build_filters("web"):
        f.check(d)
    assert d == before


# --- profiles --------------------------------------------------------------------------


def test_profiles_order_and_defaults():
    assert [f.name for f in build_filters()] == list(FILTERS)
    assert list(FILTERS)[:3] == ["empty", "placeholder", "min_length"]
    assert list(FILTERS)[-1] == "gopher_repetition"  # the costliest, last
    web = {f.name: f for f in build_filters("web")}
    assert web["gopher_quality"].min_doc_words == 50
    assert web["c4"].min_sentences == 3
    assert web["gopher_repetition"].dup_ngram_char_frac[10] == 0.10
    assert "fineweb_quality" not in {f.name for f in build_filters("finance")}


def test_overrides():
    f = {f.name: f for f in build_filters("web", {"gopher_quality": {"min_doc_words": 20}})}
    assert f["gopher_quality"].min_doc_words == 20
    assert f["gopher_quality"].min_stop_words == 2  # untouched options keep the profile's
    assert "c4" not in {f.name for f in build_filters("web", {"c4": {"enabled": False}})}
    assert "fineweb_quality" in {f.name for f in build_filters("finance", {"fineweb_quality": {"enabled": True}})}
    rep = {f.name: f for f in build_filters("finance", {"gopher_repetition": {"dup_ngram_char_frac": {"5": 0.3}}})}
    assert rep["gopher_repetition"].dup_ngram_char_frac == {5: 0.3}
    assert PROFILES["finance"]["gopher_repetition"]["dup_ngram_char_frac"][5] == 0.20  # not mutated


@pytest.mark.parametrize(
    ("profile", "overrides", "message"),
    [
        ("web", {"gopher_qualty": {}}, "unknown filter 'gopher_qualty'"),
        ("web", {"c4": {"min_sentence": 2}}, "unknown option 'min_sentence' for filter 'c4'"),
        ("web", {"c4": {"enabled": "no"}}, "option 'enabled' of filter 'c4' must be true or false"),
        ("web", {"c4": 3}, "overrides for filter 'c4' must be a mapping"),
        ("legal", None, "unknown filter profile 'legal'"),
    ],
)
def test_bad_overrides_raise(profile, overrides, message):
    with pytest.raises(ValueError) as err:
        build_filters(profile, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("", {"empty"}),
        ("HEADLINE\n\nBlah blah blah.", {"placeholder"}),
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", {"placeholder"}),
        (" ".join(["Click here to win a prize now."] * 12), {"gopher_repetition"}),
        # Where the FineWeb rules are on, they run first and get there first.
        ("\n".join(["Net 692,000 vs 617,000"] * 8), {"gopher_repetition", "fineweb_quality"}),
    ],
)
def test_every_profile_drops_junk(profile, text, reasons):
    fired = next((v for f in build_filters(profile) if (v := f.check(doc(text)))), None)
    assert fired is not None and fired[0] in reasons


# --- real samples ----------------------------------------------------------------------
# Test data preparation, not pipeline code: the filters see text after markup stripping
# and boilerplate removal, so Reuters SGML is reduced here the way those steps do it
# (entities decoded, tags gone, TITLE first then a blank line, "Reuter" sign-off dropped).

_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_TAG = re.compile(r"</?[A-Za-z]+[^<>]*>")
_NUMERIC_ENTITY = re.compile(r"&#(\d+);")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SIGN_OFF = re.compile(r"^\s*reuter\s*$", re.I | re.M)


def _decode(text: str) -> str:
    text = _NUMERIC_ENTITY.sub(lambda m: chr(int(m.group(1))), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return _CONTROL.sub("", text)


def reuters_plain(raw: str) -> str:
    match = _TITLE.search(raw)
    title = " ".join(_decode(match.group(1)).split()) if match else ""
    rest = raw[: match.start()] + raw[match.end() :] if match else raw
    body = _SIGN_OFF.sub("", _decode(_TAG.sub("", rest)))  # tags before entities: "&lt;SRD>" is text
    body = "\n".join(line.rstrip() for line in body.strip("\n").split("\n")).strip()
    return f"{title}\n\n{body}" if title and body else title or body


def prepared(raw_docs: list[dict]) -> list[dict]:
    return [
        {
            **d,
            "text": reuters_plain(d["text"]) if d["source"] == "reuters21578" else d["text"].lstrip("\ufeff"),
            "raw": d["text"],
        }
        for d in raw_docs
    ]


def drops(profile: str, docs: list[dict]) -> Counter:
    filters = build_filters(profile)
    reasons: Counter = Counter()
    for d in docs:
        reasons[next((v[0] for f in filters if (v := f.check(d))), "kept")] += 1
    return reasons


@pytest.fixture(scope="module")
def finance(finance_docs) -> list[dict]:
    return prepared(finance_docs)


@pytest.fixture(scope="module")
def medical(medical_docs) -> list[dict]:
    return prepared(medical_docs)


@pytest.fixture(scope="module")
def earnings_tables(finance) -> list[dict]:
    tables = [
        d for d in finance if "earn" in (d.get("topics") or []) and re.search(r"\bShr\b.*\bvs\b", d["text"])
    ]
    assert len(tables) > 900
    return tables


def test_reuters_helper_output(finance):
    first = next(d for d in finance if d["id"] == "reuters21578-2")["text"]
    assert first.startswith("STANDARD OIL <SRD> TO FORM FINANCIAL UNIT\n\nCLEVELAND, Feb 26 - Standard Oil")
    assert "Reuter" not in first and "&" not in first and "<TITLE>" not in first


def test_finance_profile_keeps_earnings_tables(earnings_tables):
    reasons = drops("finance", earnings_tables)
    assert reasons["kept"] / len(earnings_tables) >= 0.95, reasons


def test_web_profile_drops_earnings_tables(earnings_tables):
    reasons = drops("web", earnings_tables)
    assert reasons["kept"] / len(earnings_tables) <= 0.2, reasons


def test_finance_profile_drops_every_blah_placeholder(finance):
    blah = [d for d in finance if "Blah blah blah." in d["raw"]]
    assert len(blah) == 785
    assert drops("finance", blah) == Counter(placeholder=785)


def test_finance_profile_keeps_fomc_minutes(finance):
    fomc = [d for d in finance if d["source"] == "fomc_minutes"]
    assert drops("finance", fomc)["kept"] / len(fomc) >= 0.95
    assert drops("web", fomc)["kept"] / len(fomc) <= 0.1  # one-line layout: line rules misfire


def test_medical_profile_keeps_short_answers(medical):
    short = [d for d in medical if len(d["text"].split()) < 50]
    assert len(short) > 900
    assert drops("medical", short)["kept"] / len(short) >= 0.97
    assert drops("web", short)["kept"] == 0
    example = doc("The cause of most childhood brain tumors is not known.")
    assert all(f.check(example) is None for f in build_filters("medical"))


def test_medical_profile_keeps_bullet_lists(medical):
    bullets = [d for d in medical if d["text"].lstrip().startswith("- ")]
    assert len(bullets) > 50
    assert drops("medical", bullets)["kept"] / len(bullets) >= 0.97


def test_domain_profiles_on_their_whole_sample(finance, medical):
    fin = drops("finance", finance)
    assert fin["placeholder"] >= 785
    assert 1 - fin["kept"] / len(finance) <= 0.09, fin  # measured 7.5 %, 7.2 % placeholders
    med = drops("medical", medical)
    assert 1 - med["kept"] / len(medical) <= 0.02, med  # measured 0.75 %
