"""PII/PHI redaction to typed placeholders, and the patterns that define PII here.

Scope: the HIPAA Privacy Rule's Safe Harbor list of identifiers, 45 CFR
164.514(b)(2)(i)(A)-(R), restricted to those a pattern can find reliably in free text.

=====  ====================================================  ===========================
rule   identifier                                            here
=====  ====================================================  ===========================
(A)    names                                                 out of scope (needs NER)
(B)    geographic subdivisions smaller than a State (street  out of scope: addresses and
       address, city, county, precinct, ZIP code)            places need NER/gazetteers
(C)    elements of dates (except year) related to an         ``DATE`` and ``AGE``, only with
       individual; ages over 89                              ``clinical_dates=True``
(D)    telephone numbers                                     ``PHONE``
(E)    fax numbers                                           ``PHONE`` (same formats)
(F)    e-mail addresses                                      ``EMAIL``
(G)    social security numbers                               ``SSN``
(H)    medical record numbers                                ``MRN`` (after a label)
(I)    health plan beneficiary numbers                       ``HEALTH_PLAN`` (after a label,
                                                             or the Medicare MBI format)
(J)    account numbers                                       ``ACCOUNT`` (after a label,
                                                             Luhn-valid card numbers with a
                                                             known issuer prefix, IBANs)
(K)    certificate/license numbers                           ``LICENSE`` (after a label, or
                                                             a DEA number's check digit)
(L)    vehicle identifiers and serial numbers, including     ``VEHICLE`` (VIN check digit,
       license plate numbers                                 or after a label)
(M)    device identifiers and serial numbers                 ``DEVICE`` (after a label; MAC
                                                             addresses too)
(N)    web URLs                                              ``URL``
(O)    IP addresses                                          ``IP`` (v4 and v6)
(P)    biometric identifiers                                 out of scope (not text)
(Q)    full-face photographs                                 out of scope (not text)
(R)    any other unique identifying number or code           out of scope: no fixed shape
=====  ====================================================  ===========================

Dates are left alone unless ``clinical_dates`` is set (the medical profile): in finance
and general text "March 31, 1987" is a fiscal date, not PHI. With it, day-precise dates
go (numeric, "March 3, 2019", "2007 Jun 28", and "on March 3" without a year); month and
year alone ("in October 2008") and bare years stay, as do ages of 89 and under.

Numbers that only their label makes an identifier (MRNs, member ids, account, licence
and serial numbers) are matched only after the label ("MRN:", "Member ID", "Account
No."), and only the value is replaced, so the label stays as context: ``Patient MRN:
<MRN>``. Such a value needs four digits in a row (dashes or spaces between allowed),
except licence plates. Also not found: URLs without a scheme or "www." (a bare
"HealthCare.gov"), ZIP codes and street addresses (rule (B)), dates given only as month
and year, and unlabelled numbers that have no format of their own.

:data:`PII_PATTERNS` is the single source of truth for what counts as PII: the redactor
and the validation stage (which checks that kept text has none left, via
:func:`find_pii`) both use it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from pipelines.steps.base import Doc, Transform
from pipelines.steps.re2_superset import may_match, superset

Match = re.Match[str]


@dataclass(frozen=True)
class Detector:
    """One way of finding one PII type.

    ``regex`` finds a candidate; when it has a group named ``v`` only that group is the
    identifier (the rest is label or context). ``validate`` (a check digit, a range, the
    text around it) may reject the match.

    Where the regex is tried is a speed-up that must never lose a match (a full scan of
    every document per pattern is several times too slow), so each detector states what
    all of its matches contain:

    * by default, a digit run (:data:`DIGIT_RUN`) beginning at most ``back`` characters
      after the match starts: the regex runs only in windows around such runs;
    * with ``anchors``, one of these lower-case strings, at most ``back`` characters
      after the match starts (with ``back == 0`` the match starts at the anchor); the
      window reaches ``ahead`` characters past the anchor;
    * with ``whole_text``, nothing: the regex scans all of the text, so it should start
      with a literal or a character class, which the regex engine skips to quickly.

    A window always extends to the end of the token it stops in. ``keywords``
    (lower-case) narrow a digit-run window further: every match starts with one of them
    (a label such as "member id"), so the regex is tried only where one occurs in it.
    ``labelled`` matches win over unlabelled ones of the same span ("Medicaid ID:
    12345678901" is a plan id, not a phone number).
    """

    regex: re.Pattern[str]
    validate: Callable[[Match], bool] | None = None
    keywords: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()
    back: int = 16
    ahead: int = 24
    whole_text: bool = False
    labelled: bool = False


def _value(m: Match) -> str:
    return m.group("v") if "v" in m.re.groupindex else m.group()


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _before(m: Match, width: int) -> str:
    start = m.start("v") if "v" in m.re.groupindex else m.start()
    return m.string[max(0, start - width) : start]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer prefixes (IIN ranges) and lengths of the major card networks. With Luhn alone
# one digit run in ten would pass; the prefixes keep rows of years and round numbers out.
_CARD_PREFIX = re.compile(
    r"4\d{12}(?:\d{3}){0,2}"  # Visa 13/16/19
    r"|(?:5[1-5]\d\d|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"  # American Express
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"  # Diners Club
    r"|(?:6011|65\d\d|64[4-9]\d)\d{12,15}"  # Discover
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"  # JCB
)


def is_card_number(m: Match) -> bool:
    digits = _digits(_value(m))
    return _CARD_PREFIX.fullmatch(digits) is not None and _luhn_ok(digits)


def is_iban(m: Match) -> bool:
    """ISO 13616: with country code and check digits moved to the end, mod 97 is 1."""
    s = _value(m).replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


_VIN_VALUE = dict(zip("0123456789ABCDEFGHJKLMNPRSTUVWXYZ",
                      (*range(10), *range(1, 9), *range(1, 6), 7, 9, *range(2, 10))))
_VIN_WEIGHT = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def is_vin(m: Match) -> bool:
    """49 CFR 565.15: position 9 is the weighted sum mod 11 (10 written as X)."""
    vin = _value(m)
    if vin.isdigit() or vin.isalpha():
        return False
    check = sum(_VIN_VALUE[ch] * w for ch, w in zip(vin, _VIN_WEIGHT)) % 11
    return vin[8] == ("X" if check == 10 else str(check))


def is_dea_number(m: Match) -> bool:
    """DEA registration number: (d1+d3+d5) + 2*(d2+d4+d6) ends in d7."""
    d = [int(ch) for ch in _value(m)[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def is_ssn(m: Match) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    d = _digits(_value(m))
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def is_phone(m: Match) -> bool:
    """NANP: area code and exchange start with 2-9; an ISBN-10 is not a phone number."""
    d = _digits(m.group("n"))
    if len(d) == 11:
        d = d[1:]
    return d[0] != "1" and d[3] not in "01" and "isbn" not in _before(m, 12).lower()


_TOLL_FREE = ("800", "888", "877", "866", "855", "844", "833")
_VANITY = re.compile(r"(\d+)([A-Za-z]{3,8})")


def is_vanity_phone(m: Match) -> bool:
    """1-800-CDC-INFO, 1-800-Medicare, 7315545ATA: digits, then one run of letters.

    Letters early in the number need the leading 1 and a toll-free code; otherwise only
    the last three or four characters may be letters, which keeps "2004-MARKET" out.
    """
    s = _value(m).replace("-", "").lstrip("+")
    lead = len(s) >= 11 and s[0] == "1"
    if lead:
        s = s[1:]
    parts = _VANITY.fullmatch(s)
    if parts is None or len(s) not in (10, 11):
        return False
    if lead and s[:3] in _TOLL_FREE:
        return True
    return len(s) == 10 and len(parts.group(1)) >= 6 and parts.group(2).isupper()


def is_intl_phone(m: Match) -> bool:
    # Both "." and " " as separators is a row of signed decimals ("+12.50 13.75 14.00").
    v = _value(m)
    return 8 <= len(_digits(v)) <= 15 and not ("." in v and " " in v)


_IP_CONTEXT = re.compile(r"(?i)\b(?:ip|ipv4|address|host|server|dns|gateway|router)\b")


def is_ipv4(m: Match) -> bool:
    """Four octets of 0-255 without leading zeros.

    Small dotted numbers ("EC 3.1.1.11", section 2.1.3.4) count only when the text says
    "IP", "address" or similar just before; a first octet of two or three digits is
    specific enough on its own.
    """
    octets = _value(m).split(".")
    if any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets):
        return False
    return len(octets[0]) > 1 or _IP_CONTEXT.search(_before(m, 30)) is not None


def is_ipv6(m: Match) -> bool:
    v = _value(m)
    try:
        ipaddress.IPv6Address(v)
    except ValueError:
        return False
    return sum(1 for part in v.split(":") if part) >= 2


def is_numeric_date(m: Match) -> bool:
    """Day and month in range, either way round (US or European order)."""
    a, b = (int(x) for x in re.split(r"[/.-]", _value(m))[:2])
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= a <= 31 and 1 <= b <= 12)


_DATE_CUE = re.compile(
    r"(?i)\b(?:on|since|from|until|till|through|to|before|after|dob|born|birth|died|death"
    r"|admitted|admission|discharged|discharge|seen|visit|surgery|date|dated)\W{1,3}$"
)


def is_cued_date(m: Match) -> bool:
    """A date without a year counts only after a word that makes it one ("admitted on
    March 3"): bare, "Nov 23" is also a list entry or a headline stamp."""
    return _DATE_CUE.search(_before(m, 16)) is not None


@dataclass(frozen=True)
class _MinDigits:
    n: int

    def __call__(self, m: Match) -> bool:
        return sum(ch.isdigit() for ch in _value(m)) >= self.n


DIGIT_RUN = re.compile(
    r"\d(?:(?:[ ()./:+-]?[ ()./:+-]?\d){3,}|(?<=[1-9])[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d)"
)
"""Four digits with at most two separator characters between neighbours, or the start
of an MBI ("1EG4"): what every digit-run detector's match contains. One scan serves all of
them, and it starts with a character class, which the regex engine skips to quickly."""
_RUN4 = re.compile(r"\d(?:[ ()./:+-]?[ ()./:+-]?\d){3,}")


def has_digit_run(m: Match) -> bool:
    """A labelled value needs four digits in a row (dashes or spaces between allowed)."""
    return _RUN4.search(_value(m)) is not None


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags | re.VERBOSE)


# The bare-number patterns begin with a character class, then look behind it, so that
# the regex engine can skip to candidates quickly. An identifier must not be glued to a
# word, a longer number, a fraction or a decimal ("1887.5", "1/2", "2,858,000",
# "1987-801"); a sentence-final "." or "," after it is fine.
_GLUED = r"(?<![\w+/.,].)(?<!\d-.)"
_END = r"(?![\w-]|[.,/]\d)"
# A labelled value: letters, digits, inner dashes/slashes/dots, no trailing punctuation.
_ID = r"(?P<v>[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){3,24})(?![\w-])"
# Between a label and its value: "MRN: ", "Member ID #", "number is ".
_SEP = r"\.?\s*(?:is\s+)?[:#]?\s*(?:\#\s*)?"
_NUM = r"(?:number|num\b\.?|no\b\.?|\#|id\b|identifier)"
# Some labels also stand alone before a colon: "License: MD12345", "Serial: 4A7B-9912".
_NUM_OR_COLON = r"(?:" + _NUM + r"|(?=\s*:))"
_LABEL_BACK = 48
_AREA = r"(?:\(\ ?\d{3}\ ?\)\ ?|\d{3}[-. ]?)"
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]|20)\d\d"
_MBI_LETTER = r"[AC-HJKMNP-RT-Y]"
_MBI_ALNUM = r"[AC-HJKMNP-RT-Y0-9]"


def _label(words: str, keywords: tuple[str, ...], value: str = _ID,
           validate: Callable[[Match], bool] | None = has_digit_run,
           back: int = _LABEL_BACK, **where) -> Detector:
    """A value after a case-insensitive label; every label starts with one of ``keywords``."""
    return Detector(
        _rx(r"(?i:\b(?:" + words + r"))" + _SEP + value), validate, keywords, back=back,
        labelled=True, **where
    )


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
                anchors=("@",), back=64, ahead=256,
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
                anchors=("http", "ftp", "www"), back=0,
            ),
        ),
        "SSN": (
            _label(
                r"ssn|ss\#|social\s+security(?:\s+(?:number|no\b\.?|\#))?",
                ("ssn", "ss#", "social"),
                r"(?P<v>\d{3}[- ]?\d{2}[- ]?\d{4})(?![\w-]|[.,]\d)",
            ),
            # Unlabelled only in the dashed or spaced 3-2-4 shape: nine bare digits are
            # too common to be an SSN without a label.
            Detector(
                _rx(r"(?P<v>\d" + _GLUED + r"\d\d(?P<s>[- ])\d{2}(?P=s)\d{4})" + _END), is_ssn
            ),
        ),
        "PHONE": (
            # North American numbering plan, with or without separators, optional +1 and
            # extension: (801) 596-1887, 801.596.1887, +1 801 596 1887, 18009143017 x204.
            # The first character is "+", the country code 1, "(" or the area code's.
            Detector(
                _rx(
                    r"""(?P<v>(?P<n>[+(\d]""" + _GLUED + r"""
                    (?:(?<=\+)1[-. ]?""" + _AREA + r"""|(?<=1)[-. ]?""" + _AREA + r"""
                    |(?<=\()\ ?\d{3}\ ?\)\ ?|(?<=\d)\d\d[-. ]?)\d{3}[-. ]?\d{4})
                    (?:\ ?,?\ ?(?i:ext\b\.?|extension|x)\ ?\d{1,6})?)"""
                    + _END
                ),
                is_phone,
            ),
            Detector(
                _rx(
                    r"""(?P<v>[+\d]""" + _GLUED + r"""(?:(?<=\+)1-?\d{3}|(?<=1)-?\d{3}|(?<=\d)\d\d)
                    (?:-?[0-9A-Za-z]){7,8})(?![\w-])"""
                ),
                is_vanity_phone,
            ),
            # Other country codes: +44 20 7946 0958, +49 (30) 123456-78.
            Detector(
                _rx(r"(?P<v>\+(?<![\w+].)[2-9]\d{0,2}(?:[-. ]?\(?\d{1,5}\)?){2,6})" + _END),
                is_intl_phone,
            ),
            # A seven-digit local number needs a label to be told from a range.
            _label(
                r"(?:phone|tel|telephone|fax|call|cell|mobile|pager|beeper)\b"
                r"(?:\s+(?:at|number|no\b\.?))?",
                ("phone", "tel", "fax", "call", "cell", "mobile", "pager", "beeper"),
                r"(?P<v>[2-9]\d{2}[-. ]\d{4})" + _END,
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
                has_digit_run,
                ("mr", "med", "chart", "patient", "hospital"),
                back=_LABEL_BACK,
                labelled=True,
            ),
        ),
        "HEALTH_PLAN": (
            _label(
                r"(?:member|subscriber|policy|group|beneficiary|insurance|insured"
                r"|health\s+plan|medicaid|medicare)\s*" + _NUM_OR_COLON
                + r"|medicare\s+beneficiary\s+identifier|mbi\b|hicn\b",
                ("member", "subscriber", "policy", "group", "beneficiary", "insur", "health",
                 "medica", "mbi", "hicn"),
            ),
            # CMS Medicare Beneficiary Identifier: 11 characters in a fixed digit/letter
            # layout without S, L, O, I, B, Z, shown with or without dashes.
            Detector(
                _rx(
                    r"(?P<v>[1-9](?<![\w-].)" + _MBI_LETTER + _MBI_ALNUM + r"\d(?P<d>-?)"
                    + _MBI_LETTER + _MBI_ALNUM + r"\d(?P=d)" + _MBI_LETTER + r"{2}\d\d)(?![\w-])"
                ),
            ),
        ),
        "ACCOUNT": (
            _label(
                r"(?:account|acct|a/c)\b\.?\s*" + _NUM + r"?|(?:routing|aba)\s*" + _NUM,
                ("account", "acct", "a/c", "routing", "aba"),
                r"(?P<v>(?:[A-Za-z]{1,4}-?)?\d(?:[\d-]|\ (?=\d)){4,30}\d)(?![\w-]|[.,]\d)",
                _MinDigits(6),
            ),
            Detector(
                _rx(
                    r"""(?P<v>\d""" + _GLUED + r"""(?:\d{3}(?P<s>[- ]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,7}
                    |\d{3}(?P<a>[- ]?)\d{6}(?P=a)\d{4,5}))"""
                    + _END
                ),
                is_card_number,
            ),
            Detector(
                _rx(r"(?P<v>[A-Z](?<!\w.)[A-Z]\d\d(?:\ ?[A-Z0-9]{4}){2,7}(?:\ ?[A-Z0-9]{1,3})?)\b"),
                is_iban,
            ),
        ),
        "LICENSE": (
            _label(
                r"(?:(?:driver'?s?\s+)?licen[cs]e|certificate|permit|dea|npi|dl)\s*"
                + _NUM_OR_COLON + r"|dea\b|npi\b",
                ("driver", "licen", "certificate", "permit", "dea", "npi", "dl"),
            ),
            Detector(_rx(r"(?P<v>[ABCDEFGHJKLMPRSTUX](?<!\w.)[A-Z9]\d{7})\b"), is_dea_number),
        ),
        "VEHICLE": (
            _label(
                r"vin\b|vehicle\s+identification\s+number",
                ("vin", "vehicle"),
                r"(?P<v>[A-HJ-NPR-Z0-9]{17})\b",
            ),
            Detector(_rx(r"(?P<v>[A-HJ-NPR-Z0-9](?<!\w.)[A-HJ-NPR-Z0-9]{16})\b"), is_vin),
            # Plates are short and may hold fewer than four digits in a row.
            _label(
                r"licen[cs]e\s+plate(?:\s*" + _NUM + r")?|(?:plate|tag)\s*" + _NUM,
                (),
                r"(?P<v>[A-Z0-9]{1,4}[- ]?[A-Z0-9]{1,5})(?![\w-])",
                _MinDigits(1),
                back=16,
                anchors=("plate", "tag"),
            ),
        ),
        "DEVICE": (
            _label(
                r"(?:serial|device|implant|pacemaker)\s*" + _NUM_OR_COLON
                + r"|s/n\b|sn\s*[:\#]|(?:udi|imei|meid|esn)\b",
                ("serial", "device", "implant", "pacemaker", "s/n", "sn", "udi", "imei", "meid",
                 "esn"),
                r"(?P<v>[A-Za-z0-9()](?:[A-Za-z0-9()]|[-/.](?=[A-Za-z0-9(])){3,40})(?![\w-])",
            ),
            # A MAC address may hold no digit at all, so it is taken after its label only.
            _label(
                r"(?:mac|hardware|ethernet)(?:\s+address)?",
                (),
                r"(?P<v>[0-9A-Fa-f]{2}(?P<s>[:-])(?:[0-9A-Fa-f]{2}(?P=s)){4}[0-9A-Fa-f]{2})"
                r"(?![\w:-])",
                None,
                back=0,
                anchors=("mac", "hardware", "ethernet"),
            ),
        ),
        "IP": (
            # Octet ranges are checked by the validator, which keeps the regex short.
            Detector(
                _rx(r"(?P<v>\d(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3})(?![\w]|\.\d)"), is_ipv4
            ),
            Detector(
                _rx(
                    r"""(?<![\w:.])(?P<v>(?:[0-9A-Fa-f]{0,4}:){2,7}
                    (?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?)(?![\w:])"""
                ),
                is_ipv6,
                anchors=("::",), back=40, ahead=40,
            ),
            Detector(
                _rx(
                    r"""(?P<v>[0-9A-Fa-f](?<![\w:.].)[0-9A-Fa-f]{0,3}:
                    (?:[0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4})(?![\w:])"""
                ),
                is_ipv6,
                back=_LABEL_BACK,  # the digits may all sit in the last groups
            ),
        ),
        "DATE": (
            Detector(
                _rx(
                    r"""\b(?P<v>""" + _MONTH + r"""\s""" + _DAY + r""",?\s""" + _YEAR + r"""
                    |""" + _DAY + r"""\s(?:of\s)?""" + _MONTH + r""",?\s""" + _YEAR + r"""
                    |""" + _YEAR + r"""\s""" + _MONTH + r"""\s""" + _DAY + r""")\b"""
                ),
                back=24,
            ),
            # Without a year: these run over the whole text (no four-digit run to find).
            Detector(
                _rx(_MONTH + r"\s" + _DAY + r"\b(?!,?\s\d)"), is_cued_date, whole_text=True
            ),
            Detector(
                _rx(r"\d\d?(?:st|nd|rd|th)?\s(?:of\s)?" + _MONTH + r"\b(?!,?\s\d)"),
                is_cued_date,
                whole_text=True,
            ),
            Detector(
                _rx(
                    r"""(?P<v>\d(?<![\w/.:-].)\d?(?:/\d{1,2}/(?:\d{4}|\d\d)|-\d{1,2}-\d{4}
                    |\.\d{1,2}\.\d{4}))(?![\w/]|[-.:]\d)"""
                ),
                is_numeric_date,
            ),
            Detector(
                _rx(
                    r"""(?P<v>[12](?<![\w/.:-].)(?:(?<=1)[89]|(?<=2)0)\d\d(?P<s>[-/.])
                    (?:0[1-9]|1[0-2])(?P=s)(?:0[1-9]|[12]\d|3[01]))(?![\d/]|[-.:]\d)"""
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
                anchors=("old", "yo", "y/o", "y.o"), ahead=4,
            ),
            _label(
                r"aged\s|age:\s?", (), r"(?P<v>9\d|1[01]\d)\b", None, back=0,
                anchors=("aged", "age:"),
            ),
        ),
    }
)
"""PII type -> the detectors that find it. Import this (or call :func:`find_pii`) to check
that text holds no PII; never copy the patterns."""

PII_TYPES: tuple[str, ...] = tuple(PII_PATTERNS)
CLINICAL_TYPES = frozenset({"DATE", "AGE"})
"""Safe Harbor (C): searched only where ``clinical_dates`` is on."""

# Between equal spans, after "labelled first", the type listed first wins.
_RANK = {t: i for i, t in enumerate(PII_TYPES)}
_TOKEN_REST = re.compile(r"\S*")


def _lower(text: str) -> str:
    """Lower-cased text with the same offsets (a few characters lower to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)


def _window_end(text: str, pos: int) -> int:
    # Never inside a token, or a lookahead at the window's end would see a boundary.
    return _TOKEN_REST.match(text, min(len(text), pos)).end()


def _merge(text: str, spans: Iterable[tuple[int, int]], back: int, ahead: int):
    windows: list[tuple[int, int]] = []
    for s, e in spans:
        start = max(0, s - back)
        end = _window_end(text, e + ahead)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


@dataclass(frozen=True)
class _Plan:
    runs: tuple[tuple[str, Detector], ...]
    anchored: tuple[tuple[str, Detector], ...]
    whole: tuple[tuple[str, Detector], ...]


@lru_cache(maxsize=None)
def _plan(types: frozenset[str], clinical_dates: bool) -> _Plan:
    unknown = types - set(PII_TYPES)
    if unknown:
        raise ValueError(f"unknown PII types {sorted(unknown)}; known: {list(PII_TYPES)}")
    if not clinical_dates:
        types -= CLINICAL_TYPES
    chosen = [(t, d) for t in PII_TYPES if t in types for d in PII_PATTERNS[t]]
    return _Plan(
        runs=tuple((t, d) for t, d in chosen if not d.anchors and not d.whole_text),
        anchored=tuple((t, d) for t, d in chosen if d.anchors),
        whole=tuple((t, d) for t, d in chosen if d.whole_text),
    )


def _find_all(low: str, needles: tuple[str, ...], start: int, end: int) -> list[int]:
    hits = set()
    for needle in needles:
        i = low.find(needle, start, end)
        while i != -1:
            hits.add(i)
            i = low.find(needle, i + 1, end)
    return sorted(hits)


def _accepted(det: Detector, m: Match | None) -> bool:
    return m is not None and (det.validate is None or det.validate(m))


def _matches_at(text: str, low: str, det: Detector, starts: tuple[str, ...], lo: int, hi: int):
    """Matches that begin where one of ``starts`` occurs in ``low[lo:hi]``.

    Like ``finditer``, no match begins inside an accepted one; without that, a hit
    inside a long URL would be matched again to the end of the URL, quadratically.
    """
    resume = lo
    for i in _find_all(low, starts, lo, hi):
        if i >= resume:
            m = det.regex.match(text, i)
            if _accepted(det, m):
                resume = m.end()
                yield m


def _matches_in(text: str, det: Detector, windows: list[tuple[int, int]]):
    for start, end in windows:
        for m in det.regex.finditer(text, start, end):
            if _accepted(det, m):
                yield m


def _matches(text: str, plan: _Plan) -> Iterable[tuple[str, Detector, Match]]:
    """Every accepted match of every detector in ``plan``, searched where it can occur."""
    low = _lower(text)
    if plan.runs:
        runs = [m.span() for m in DIGIT_RUN.finditer(text)]
        windows_by_margins: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for pii_type, det in plan.runs:
            margins = (det.back, det.ahead)
            windows = windows_by_margins.get(margins)
            if windows is None:
                windows = windows_by_margins[margins] = _merge(text, runs, *margins)
            for start, end in windows:
                found = (
                    _matches_at(text, low, det, det.keywords, start, end) if det.keywords
                    else _matches_in(text, det, [(start, end)])
                )
                yield from ((pii_type, det, m) for m in found)
    for pii_type, det in plan.anchored:
        if det.back:
            width = max(map(len, det.anchors))
            hits = [(i, i + width) for i in _find_all(low, det.anchors, 0, len(low))]
            found = _matches_in(text, det, _merge(text, hits, det.back, det.ahead))
        else:
            found = _matches_at(text, low, det, det.anchors, 0, len(low))
        yield from ((pii_type, det, m) for m in found)
    for pii_type, det in plan.whole:
        yield from ((pii_type, det, m) for m in _matches_in(text, det, [(0, len(text))]))


def _spans(text: str, plan: _Plan) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, type)`` of PII in ``text``, leftmost-longest first."""
    found: set[tuple[int, int, bool, int, str]] = set()
    for pii_type, det, m in _matches(text, plan):
        start, end = m.span("v" if "v" in m.re.groupindex else 0)
        found.add((start, start - end, not det.labelled, _RANK[pii_type], pii_type))
    out: list[tuple[int, int, str]] = []
    last = -1
    for start, neg_len, _, _, pii_type in sorted(found):
        if start >= last:
            last = start - neg_len
            out.append((start, last, pii_type))
    return out


def find_pii(
    text: str, types: Iterable[str] | None = None, clinical_dates: bool = False
) -> dict[str, list[str]]:
    """``{type: [matched strings]}`` for the PII in ``text`` (empty when there is none).

    Takes the same options as :class:`PIIRedactor`, so validation checks a domain with
    the settings its profile redacted with.
    """
    found: dict[str, list[str]] = {}
    plan = _plan(frozenset(PII_TYPES if types is None else types), clinical_dates)
    for start, end, pii_type in _spans(text, plan):
        found.setdefault(pii_type, []).append(text[start:end])
    return found


def may_hold_pii(texts, types: Iterable[str] | None = None, clinical_dates: bool = False):
    """Per text of an Arrow string array (or chunked array): False where :func:`find_pii`
    with these options certainly finds nothing, True where it may, so a caller need call
    it only there; null texts are False.

    Decided for the whole column in one pass of Arrow's RE2 (C++, several hundred MB/s)
    over one alternation of every detector's regex, each rewritten by
    :mod:`~pipelines.steps.re2_superset` to match wherever the regex could (a validator
    only rejects matches, so it is left out). The rewrite is proven on ASCII text only, so
    every text with another character is True.
    """
    plan = _plan(frozenset(PII_TYPES if types is None else types), clinical_dates)
    return may_match(texts, _superset(plan))


@lru_cache(maxsize=None)
def _superset(plan: _Plan) -> str:
    return superset(*(det.regex for _, det in plan.runs + plan.anchored + plan.whole))


class PIIRedactor(Transform):
    """Replace PII with ``<TYPE>`` placeholders and set ``doc["pii"] = {type: count}``.

    ``types`` restricts the types redacted (default: all of :data:`PII_TYPES`);
    ``clinical_dates`` turns on ``DATE`` and ``AGE`` (Safe Harbor (C)), for the medical
    profile.
    """

    name = "pii"

    def __init__(self, types: Iterable[str] | None = None, clinical_dates: bool = False):
        self.types = frozenset(PII_TYPES if types is None else types)
        self.clinical_dates = clinical_dates
        _plan(self.types, clinical_dates)  # fail on unknown types now, not per document

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """``(redacted text, {type: count})``, counting only types that occurred."""
        spans = _spans(text, _plan(self.types, self.clinical_dates))
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
