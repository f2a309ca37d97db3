"""PII/PHI redaction to typed placeholders, and the patterns that define PII here.

Scope: the HIPAA Privacy Rule's Safe Harbor list of identifiers, 45 CFR
164.514(b)(2)(i)(A)-(R), restricted to those a pattern can find reliably in free text.

=====  ====================================================  ===========================
rule   identifier                                            here
=====  ====================================================  ===========================
(A)    names                                                 out of scope (needs NER)
(B)    geographic subdivisions smaller than a State (street  out of scope: addresses and
       address, city, county, precinct, ZIP code)            place names need NER/gazetteers
(C)    elements of dates (except year) related to an         ``DATE`` and ``AGE``, only with
       individual; ages over 89                              ``clinical_dates=True``
(D)    telephone numbers                                     ``PHONE``
(E)    fax numbers                                           ``PHONE`` (same formats)
(F)    e-mail addresses                                      ``EMAIL``
(G)    social security numbers                               ``SSN``
(H)    medical record numbers                                ``MRN`` (needs a label)
(I)    health plan beneficiary numbers                       ``HEALTH_PLAN`` (label, or the
                                                             Medicare MBI format)
(J)    account numbers                                       ``ACCOUNT`` (label, Luhn-valid
                                                             card numbers, mod-97 IBANs)
(K)    certificate/license numbers                           ``LICENSE`` (label, or a DEA
                                                             number with its check digit)
(L)    vehicle identifiers, serial and license plate         ``VEHICLE`` (VIN check digit,
       numbers                                               or a label)
(M)    device identifiers and serial numbers                 ``DEVICE`` (label, MAC address)
(N)    web URLs                                              ``URL``
(O)    IP addresses                                          ``IP`` (v4 and v6)
(P)    biometric identifiers                                 out of scope (not text)
(Q)    full-face photographs                                 out of scope (not text)
(R)    any other unique identifying number or code           out of scope: no fixed shape
=====  ====================================================  ===========================

Dates are off unless ``clinical_dates`` is set (the medical profile): in finance and
general text "March 31, 1987" is a fiscal date, not PHI. Bare numbers that only a label
makes an identifier (MRNs, member ids, account and licence numbers, serials) are matched
only after their label ("MRN:", "Member ID", "Account No."), and only the value is
replaced, so the label stays as context: ``Patient MRN: <MRN>``.

:data:`PII_PATTERNS` is the single source of truth for what counts as PII: the redactor
and the validation stage (which checks that kept text has none left) both go through it,
the latter via :func:`find_pii`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipelines.steps.base import Doc, Transform


@dataclass(frozen=True)
class Detector:
    """One way of finding one PII type.

    ``regex`` finds candidates; when it has a group named ``v`` only that group is the
    identifier (the rest is its label or context). ``validate`` (a check digit, a range,
    the surrounding text) gets the match and can reject it. ``probe`` is a cheap test on
    the lower-cased text: the regex runs only when one of these substrings is present, or
    always when ``probe`` is empty.
    """

    regex: re.Pattern[str]
    validate: Callable[[re.Match[str]], bool] | None = None
    probe: tuple[str, ...] = ()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _value(m: re.Match[str]) -> str:
    return m.group("v") if "v" in m.re.groupindex else m.group()


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _before(m: re.Match[str], width: int) -> str:
    start = m.start("v") if "v" in m.re.groupindex else m.start()
    return m.string[max(0, start - width) : start]


# Issuer prefixes (IIN ranges) and lengths of the major card networks; with Luhn this
# keeps digit runs in tables (a row of years, "4500 4600 4700 4800") from passing.
_CARD_PREFIX = re.compile(
    r"4\d{12}(?:\d{3}){0,2}"  # Visa 13/16/19
    r"|(?:5[1-5]\d\d|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"  # American Express
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"  # Diners Club
    r"|(?:6011|65\d\d|64[4-9]\d)\d{12,15}"  # Discover
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"  # JCB
)


def is_card_number(m: re.Match[str]) -> bool:
    digits = _digits(_value(m))
    return _CARD_PREFIX.fullmatch(digits) is not None and _luhn_ok(digits)


def is_iban(m: re.Match[str]) -> bool:
    """ISO 13616: move the country code and check digits to the end, mod 97 must be 1."""
    s = _value(m).replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def is_vin(m: re.Match[str]) -> bool:
    """49 CFR 565.15: position 9 is the weighted sum mod 11 (10 written as X)."""
    vin = _value(m)
    if vin.isdigit() or vin.isalpha():
        return False
    check = sum(_VIN_VALUES[ch] * w for ch, w in zip(vin, _VIN_WEIGHTS)) % 11
    return vin[8] == ("X" if check == 10 else str(check))


def is_dea_number(m: re.Match[str]) -> bool:
    """DEA registration: (d1+d3+d5) + 2*(d2+d4+d6) ends in the seventh digit."""
    d = [int(ch) for ch in _value(m)[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def is_ssn(m: re.Match[str]) -> bool:
    """SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    d = _digits(_value(m))
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def _nanp_ok(digits: str) -> bool:
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789"


def is_phone(m: re.Match[str]) -> bool:
    # ISBN-10s are 10 digits too.
    return _nanp_ok(_digits(m.group("n"))) and "isbn" not in _before(m, 12).lower()


_TOLL_FREE = ("800", "888", "877", "866", "855", "844", "833")
_VANITY_TAIL = re.compile(r"(\d+)([A-Z]{3,7})")


def is_vanity_phone(m: re.Match[str]) -> bool:
    """1-888-693-NDEP, 7315545ATA: digits, then one run of letters as the last part.

    With only the three area-code digits before the letters, the number must also carry
    the leading 1 and a toll-free code, which keeps "200 MLN DLRS" out (the regex takes no
    spaces among the letters anyway).
    """
    s = _value(m).replace("-", "").lstrip("+")
    lead = s[0] == "1" and len(s) == 11
    if lead:
        s = s[1:]
    tail = _VANITY_TAIL.fullmatch(s)
    if len(s) != 10 or tail is None:
        return False
    return len(tail.group(1)) >= 4 or (lead and s[:3] in _TOLL_FREE)


def is_intl_phone(m: re.Match[str]) -> bool:
    # Both "." and " " as separators is a row of signed decimals ("+12.50 13.75 14.00").
    v = _value(m)
    return 8 <= len(_digits(v)) <= 15 and not ("." in v and " " in v)


_IP_CONTEXT = re.compile(r"(?i)\b(?:ip|ipv4|address|host|server|dns|gateway|router)\b")


def is_ipv4(m: re.Match[str]) -> bool:
    # "EC 3.1.1.11", "section 2.1.3.4": small dotted numbers are IPs only when the text
    # says so; a two- or three-digit first octet is specific enough on its own.
    first = _value(m).split(".", 1)[0]
    return len(first) > 1 or _IP_CONTEXT.search(_before(m, 30)) is not None


def is_ipv6(m: re.Match[str]) -> bool:
    v = _value(m)
    try:
        ipaddress.IPv6Address(v)
    except ValueError:
        return False
    return sum(1 for part in v.split(":") if part) >= 2


def is_date(m: re.Match[str]) -> bool:
    """A numeric date whose day and month are in range, either way round (US or EU)."""
    a, b = (int(x) for x in re.split(r"[/.-]", _value(m))[:2])
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= a <= 31 and 1 <= b <= 12)


def _min_digits(n: int) -> Callable[[re.Match[str]], bool]:
    def check(m: re.Match[str]) -> bool:
        return sum(ch.isdigit() for ch in _value(m)) >= n

    return check


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags | re.VERBOSE)


# Shared pieces. An identifier must not be glued to a longer number, a word, a fraction
# or a decimal ("1887.5", "1/2", "2,858,000"); a sentence-final "." or "," is fine.
_START = r"(?<![\w+/.,-])"
_END = r"(?![\w-]|[.,/]\d)"
# A labelled value: letters, digits, inner dashes/slashes/dots, no trailing punctuation.
_ID = r"(?P<v>[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){3,24})(?![\w-])"
# Between a label and its value: "MRN: ", "Member ID #", "number is ".
_SEP = r"\.?\s*(?:is\s+)?[:#]?\s*(?:\#\s*)?"
_NUM = r"(?:number|num\b\.?|no\b\.?|\#|id\b|identifier)"
# Some labels also stand alone before a colon: "License: MD12345", "Serial: 4A7B-9912".
_NUM_OR_COLON = r"(?:" + _NUM + r"|(?=\s*:))"
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]|20)\d\d"

_LABEL_PROBES_ACCOUNT = ("account", "acct", "a/c", "routing", "aba")

PII_PATTERNS: Mapping[str, tuple[Detector, ...]] = MappingProxyType(
    {
        "EMAIL": (
            Detector(
                _rx(
                    r"""(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*
                    @[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?
                    (?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}
                    (?![\w-])"""
                ),
                probe=("@",),
            ),
        ),
        "URL": (
            # The last character may not be sentence punctuation or a closing bracket.
            Detector(
                _rx(
                    r"""\b(?:(?:https?|ftp)://|www\d{0,3}\.)
                    [^\s<>"'`{}|\\^\[\]]*[^\s<>"'`{}|\\^\[\].,;:!?)]""",
                    re.IGNORECASE,
                ),
                probe=("://", "www"),
            ),
        ),
        "SSN": (
            Detector(
                _rx(
                    r"""(?i:\b(?:ssn|ss\#|social\s+security(?:\s+(?:number|no\b\.?|\#))?))"""
                    + _SEP
                    + r"""(?P<v>\d{3}[- ]?\d{2}[- ]?\d{4})(?![\w-]|[.,]\d)"""
                ),
                probe=("ssn", "ss#", "social security"),
            ),
            # Unlabelled only in the dashed or spaced 3-2-4 shape; nine bare digits are
            # too common to be an SSN without a label.
            Detector(
                _rx(_START + r"(?P<v>\d{3}(?P<s>[- ])\d{2}(?P=s)\d{4})" + _END),
                validate=is_ssn,
            ),
        ),
        "PHONE": (
            # North American numbering plan, with or without separators, optional +1 and
            # extension: (801) 596-1887, 801.596.1887, +1 801 596 1887, 18009143017 x204.
            Detector(
                _rx(
                    _START
                    + r"""(?P<v>(?P<n>(?:\+?1[-. ]?)?
                    (?:\(\ ?\d{3}\ ?\)\ ?|\d{3}[-. ]?)\d{3}[-. ]?\d{4})
                    (?:\ ?,?\ ?(?i:ext\b\.?|extension|x)\ ?\d{1,6})?)"""
                    + _END
                ),
                validate=is_phone,
            ),
            Detector(
                _rx(_START + r"(?P<v>(?:\+?1-?)?\d{3}-?[0-9A-Z]{3}-?[0-9A-Z]{4})(?![\w-])"),
                validate=is_vanity_phone,
            ),
            # Other country codes: +44 20 7946 0958, +49 (30) 123456-78.
            Detector(
                _rx(
                    r"""(?<![\w+])(?P<v>\+[2-9]\d{0,2}
                    (?:[-. ]?\(?\d{1,5}\)?){2,6})"""
                    + _END
                ),
                validate=is_intl_phone,
                probe=("+",),
            ),
            # A seven-digit local number needs a label to be told from a range.
            Detector(
                _rx(
                    r"""(?i:\b(?:phone|tel|telephone|fax|call|cell|mobile|pager|beeper)
                    \b(?:\s+(?:at|number|no\b\.?))?)"""
                    + _SEP
                    + r"(?P<v>[2-9]\d{2}[-. ]\d{4})"
                    + _END
                ),
                probe=("phone", "tel", "fax", "call", "cell", "mobile", "pager", "beeper"),
            ),
        ),
        "MRN": (
            Detector(
                _rx(
                    r"""(?:\bMRN|\bMR\s?(?:\#|No\b\.?)|(?i:\bmed(?:ical|\.)?\s*rec(?:ord|\.)?
                    (?:\s*""" + _NUM + r""")?|\bchart\s*""" + _NUM + r"""
                    |\b(?:patient|hospital)\s*""" + _NUM + r"""))"""
                    + _SEP
                    + _ID
                ),
                validate=_min_digits(4),
                probe=("mr", "med", "chart", "patient", "hospital"),
            ),
        ),
        "HEALTH_PLAN": (
            Detector(
                _rx(
                    r"""(?i:\b(?:member|subscriber|policy|group|beneficiary|insurance|insured
                    |health\s+plan|medicaid|medicare)\s*""" + _NUM_OR_COLON + r"""
                    |\bmedicare\s+beneficiary\s+identifier|\bmbi\b|\bhicn\b)"""
                    + _SEP
                    + _ID
                ),
                validate=_min_digits(4),
                probe=("member", "subscriber", "policy", "group", "benef", "insur",
                       "plan", "medica", "mbi", "hicn"),
            ),
            # CMS Medicare Beneficiary Identifier: 11 characters in a fixed digit/letter
            # layout, without S, L, O, I, B, Z; shown with or without dashes.
            Detector(
                _rx(
                    r"""\b(?P<v>[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d(?P<d>-?)
                    [AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d(?P=d)[AC-HJKMNP-RT-Y]{2}\d\d)\b"""
                ),
            ),
        ),
        "ACCOUNT": (
            Detector(
                _rx(
                    r"""(?i:\b(?:(?:bank|checking|savings|billing|credit\s+card|card)\s+)?
                    (?:account|acct|a/c)\b\.?\s*""" + _NUM + r"""?
                    |\b(?:routing|aba)\s*""" + _NUM + r""")"""
                    + _SEP
                    + r"""(?P<v>(?:[A-Za-z]{1,4}-?)?\d(?:[\d-]|\ (?=\d)){4,30}\d)(?![\w-]|[.,]\d)"""
                ),
                validate=_min_digits(6),
                probe=_LABEL_PROBES_ACCOUNT,
            ),
            Detector(
                _rx(
                    _START
                    + r"""(?P<v>\d{4}(?P<s>[- ]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,7}
                    |\d{4}(?P<a>[- ]?)\d{6}(?P=a)\d{4,5})"""
                    + _END
                ),
                validate=is_card_number,
            ),
            Detector(
                _rx(r"\b(?P<v>[A-Z]{2}\d\d(?:\ ?[A-Z0-9]{4}){2,7}(?:\ ?[A-Z0-9]{1,3})?)\b"),
                validate=is_iban,
            ),
        ),
        "LICENSE": (
            Detector(
                _rx(
                    r"""(?i:\b(?:(?:driver'?s?\s+)?licen[cs]e|certificate|permit|dea
                    |npi|dl)\s*""" + _NUM_OR_COLON + r"""|\bdea\b|\bnpi\b)"""
                    + _SEP
                    + _ID
                ),
                validate=_min_digits(3),
                probe=("licen", "certificate", "permit", "dea", "npi", "dl"),
            ),
            Detector(_rx(r"\b(?P<v>[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7})\b"), validate=is_dea_number),
        ),
        "VEHICLE": (
            Detector(
                _rx(
                    r"""(?i:\bvin\b|\bvehicle\s+identification\s+number)"""
                    + _SEP
                    + r"""(?P<v>[A-HJ-NPR-Z0-9]{17})\b"""
                ),
                probe=("vin", "vehicle"),
            ),
            Detector(_rx(r"\b(?P<v>[A-HJ-NPR-Z0-9]{17})\b"), validate=is_vin),
            Detector(
                _rx(
                    r"""(?i:\blicen[cs]e\s+plate(?:\s*""" + _NUM + r""")?|\b(?:plate|tag)\s*""" + _NUM + r""")"""
                    + _SEP
                    + r"""(?P<v>[A-Z0-9]{1,4}[- ]?[A-Z0-9]{1,5})(?![\w-])"""
                ),
                validate=_min_digits(1),
                probe=("plate", "tag"),
            ),
        ),
        "DEVICE": (
            Detector(
                _rx(
                    r"""(?i:\b(?:serial|device|implant|pacemaker)\s*""" + _NUM_OR_COLON + r"""
                    |\bs/n\b|\bsn\s*[:\#]|\b(?:udi|imei|meid|esn)\b)"""
                    + _SEP
                    + r"""(?P<v>[A-Za-z0-9()](?:[A-Za-z0-9()]|[-/.](?=[A-Za-z0-9(])){3,40})(?![\w-])"""
                ),
                validate=_min_digits(2),
                probe=("serial", "device", "implant", "pacemaker", "s/n", "sn", "udi",
                       "imei", "meid", "esn"),
            ),
            # MAC address (EUI-48).
            Detector(
                _rx(r"(?<![\w:-])(?P<v>[0-9A-Fa-f]{2}(?P<s>[:-])(?:[0-9A-Fa-f]{2}(?P=s)){4}[0-9A-Fa-f]{2})(?![\w:-])"),
            ),
        ),
        "IP": (
            Detector(
                _rx(
                    r"""(?<![\w.])(?P<v>(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}
                    (?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?![\w]|\.\d)"""
                ),
                validate=is_ipv4,
            ),
            Detector(
                _rx(
                    r"""(?<![\w:.])(?P<v>(?:[0-9A-Fa-f]{0,4}:){2,7}
                    (?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?)(?![\w:])"""
                ),
                validate=is_ipv6,
                probe=("::", ":"),
            ),
        ),
        "DATE": (
            Detector(
                _rx(
                    r"""\b(?P<v>""" + _MONTH + r"""\s""" + _DAY + r""",?\s""" + _YEAR + r"""
                    |""" + _DAY + r"""\s(?:of\s)?""" + _MONTH + r""",?\s""" + _YEAR + r"""
                    |""" + _YEAR + r"""\s""" + _MONTH + r"""\s""" + _DAY + r""")\b"""
                ),
            ),
            # Without a year, "March 3" is a date only after a word that makes it one
            # ("admitted on March 3"); bare it is also a list entry or a headline stamp.
            Detector(
                _rx(
                    r"""(?i:\b(?:on|since|from|until|till|through|to|before|after|dob:?
                    |born|died))\s+(?P<v>""" + _MONTH + r"""\s""" + _DAY + r"""
                    |""" + _DAY + r"""\s(?:of\s)?""" + _MONTH + r""")\b(?!,?\s\d)"""
                ),
            ),
            Detector(
                _rx(
                    r"""(?<![\w/.:-])(?P<v>\d{1,2}(?:/\d{1,2}/(?:\d{4}|\d\d)|-\d{1,2}-\d{4}
                    |\.\d{1,2}\.\d{4}))(?![\w/]|[-.:]\d)"""
                ),
                validate=is_date,
            ),
            Detector(
                _rx(
                    r"""(?<![\w/.:-])(?P<v>""" + _YEAR + r"""(?P<s>[-/.])(?:0[1-9]|1[0-2])
                    (?P=s)(?:0[1-9]|[12]\d|3[01]))(?![\d/]|[-.:]\d)"""
                ),
            ),
        ),
        "AGE": (
            # Only the number goes: "a <AGE>-year-old woman" keeps the phrase readable.
            Detector(
                _rx(
                    r"""(?<![\w.])(?P<v>9\d|1[01]\d)(?=[\s-]?(?:years?|yrs?|y)[\s-]?old\b
                    |\s?(?:yo|y/o|y\.o\.)(?!\w))"""
                ),
                probe=("old", "yo", "y/o", "y.o"),
            ),
            Detector(_rx(r"(?i:\baged\s|\bage:\s?)(?P<v>9\d|1[01]\d)\b"), probe=("age",)),
        ),
    }
)
"""PII type -> the detectors that find it. Import this (or call :func:`find_pii`) to check
that text holds no PII; never copy the patterns."""

PII_TYPES: tuple[str, ...] = tuple(PII_PATTERNS)
CLINICAL_TYPES = frozenset({"DATE", "AGE"})
"""Safe Harbor (C): redacted only where ``clinical_dates`` is on."""

# A type's position is its rank when two matches start at the same place and are equally
# long: labels and check digits decide before the looser shapes do.
_RANK = {t: i for i, t in enumerate(PII_TYPES)}


def _spans(text: str, detectors: tuple[tuple[str, Detector], ...]) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, type)`` of PII in ``text``, leftmost-longest first."""
    low = text.lower()
    found: list[tuple[int, int, int, str]] = []
    for pii_type, det in detectors:
        if det.probe and not any(p in low for p in det.probe):
            continue
        for m in det.regex.finditer(text):
            if det.validate is not None and not det.validate(m):
                continue
            start, end = m.span("v" if "v" in m.re.groupindex else 0)
            found.append((start, -(end - start), _RANK[pii_type], pii_type))
    found.sort()
    out: list[tuple[int, int, str]] = []
    last = -1
    for start, neg_len, _, pii_type in found:
        if start >= last:
            out.append((start, start - neg_len, pii_type))
            last = start - neg_len
    return out


def _select(types: Iterable[str] | None, clinical_dates: bool) -> tuple[tuple[str, Detector], ...]:
    wanted = set(PII_TYPES if types is None else types)
    unknown = wanted - set(PII_TYPES)
    if unknown:
        raise ValueError(f"unknown PII types {sorted(unknown)}; known: {list(PII_TYPES)}")
    if not clinical_dates:
        wanted -= CLINICAL_TYPES
    return tuple((t, d) for t in PII_TYPES if t in wanted for d in PII_PATTERNS[t])


def find_pii(
    text: str, types: Iterable[str] | None = None, clinical_dates: bool = False
) -> dict[str, list[str]]:
    """``{type: [matched strings]}`` for the PII left in ``text`` (empty when clean).

    Takes the same options as :class:`PIIRedactor`, so validation can check a domain with
    the settings its profile redacted with.
    """
    found: dict[str, list[str]] = {}
    for start, end, pii_type in _spans(text, _select(types, clinical_dates)):
        found.setdefault(pii_type, []).append(text[start:end])
    return found


class PIIRedactor(Transform):
    """Replace PII with ``<TYPE>`` placeholders and record ``doc["pii"] = {type: count}``.

    ``types`` restricts the types redacted (default: all of :data:`PII_TYPES`);
    ``clinical_dates`` turns on ``DATE`` and ``AGE`` (Safe Harbor (C)), meant for the
    medical profile only.
    """

    name = "pii"

    def __init__(self, types: Iterable[str] | None = None, clinical_dates: bool = False):
        self.clinical_dates = clinical_dates
        self._detectors = _select(types, clinical_dates)
        self.types = tuple(dict.fromkeys(t for t, _ in self._detectors))

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        spans = _spans(text, self._detectors)
        if not spans:
            return text, {}
        parts: list[str] = []
        counts: dict[str, int] = {}
        pos = 0
        for start, end, pii_type in spans:
            parts.append(text[pos:start])
            parts.append(f"<{pii_type}>")
            counts[pii_type] = counts.get(pii_type, 0) + 1
            pos = end
        parts.append(text[pos:])
        return "".join(parts), counts

    def __call__(self, doc: Doc) -> Doc:
        text, counts = self.redact(doc["text"])
        return {**doc, "text": text, "pii": counts}
