"""Realistic PII/PHI identifiers, and a way to plant them into real documents.

Values are made up, or are published examples and test numbers (issuers' test cards,
the ISO 13616 example IBANs, CMS's example MBI 1EG4-TE5-MK73), or organisational numbers
printed in the shared samples, in the formats people write in clinical notes, bills and
forms. Numbers that carry a check digit (card numbers: Luhn; IBAN: ISO 13616 mod 97;
VIN: 49 CFR 565.15; DEA numbers) are generated here with a valid one, and Medicare
Beneficiary Identifiers follow the CMS layout. This module computes those check digits
itself and does not import the redactor, so tests check it against an independent
source.

:func:`plant_pii` inserts identifiers into real documents, each inside a carrier sentence
("Contact the patient at {}.") placed at a sentence boundary, and returns what it
planted. Every carrier has at least eight characters of fixed text before the value,
and ends with text after it, so a test can look for ``<TYPE>`` at the value's place.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

from pipelines.steps.base import Doc


@dataclass(frozen=True)
class Family:
    """Values of one PII type that share carrier sentences."""

    pii_type: str
    values: tuple[str, ...]
    carriers: tuple[str, ...]


def _luhn_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def _card(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + _luhn_digit(body)


def _group(number: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(number[pos : pos + size])
        pos += size
    return sep.join(parts)


def _iban(country: str, bban: str, spaced: bool) -> str:
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = country + f"{98 - int(numeric) % 97:02d}" + bban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban


# 49 CFR 565.15 transliteration: letters to digits, I, O and Q never used.
_VIN_VALUE = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_VIN_WEIGHT = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def _vin(rng: random.Random, wmi: str) -> str:
    descriptor = "".join(rng.choice(list(_VIN_VALUE)) for _ in range(5))
    model_year = rng.choice("ABCDEFGHJKLMNPRSTVWXY123456789")
    # positions 13-17, the serial number, are numeric for larger manufacturers
    serial = "".join(rng.choice(string.digits) for _ in range(6))
    vin = wmi + descriptor + "0" + model_year + rng.choice("ABCDEFGH") + serial
    check = sum(_VIN_VALUE[ch] * w for ch, w in zip(vin, _VIN_WEIGHT)) % 11
    return vin[:8] + ("X" if check == 10 else str(check)) + vin[9:]


def _dea(rng: random.Random) -> str:
    d = [rng.randrange(10) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    letters = rng.choice("ABFGM") + rng.choice(string.ascii_uppercase)
    return letters + "".join(map(str, d)) + str(check)


_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"


def _mbi(rng: random.Random, dashed: bool) -> str:
    alnum = _MBI_LETTERS + string.digits
    chars = [
        rng.choice("123456789"), rng.choice(_MBI_LETTERS), rng.choice(alnum),
        rng.choice(string.digits), rng.choice(_MBI_LETTERS), rng.choice(alnum),
        rng.choice(string.digits), rng.choice(_MBI_LETTERS), rng.choice(_MBI_LETTERS),
        rng.choice(string.digits), rng.choice(string.digits),
    ]
    mbi = "".join(chars)
    return f"{mbi[:4]}-{mbi[4:7]}-{mbi[7:]}" if dashed else mbi


def _ssn(rng: random.Random, sep: str) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}{sep}{rng.randrange(1, 100):02d}{sep}{rng.randrange(1, 10000):04d}"


def _generated() -> dict[str, tuple[str, ...]]:
    rng = random.Random(164514)  # fixed: the fixture is the same on every run
    cards = []
    for i, (prefix, length, sizes) in enumerate(
        [("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)), ("55", 16, (4, 4, 4, 4)),
         ("2221", 16, (4, 4, 4, 4)), ("34", 15, (4, 6, 5)), ("37", 15, (4, 6, 5)),
         ("6011", 16, (4, 4, 4, 4)), ("3528", 16, (4, 4, 4, 4))] * 3
    ):
        number = _card(rng, prefix, length)
        cards.append(_group(number, sizes, (" ", "-", "")[i % 3]))
    ibans = [
        _iban(country, bban, spaced)
        for country, bban in [
            ("DE", "370400440532013000"), ("GB", "NWBK60161331926819"),
            ("FR", "20041010050500013M02606"), ("NL", "ABNA0417164300"),
            ("ES", "21000418450200051332"), ("IT", "X0542811101000000123456"),
            ("CH", "00762011623852957"), ("BE", "539007547034"),
        ]
        for spaced in (True, False)
    ]
    return {
        "card": tuple(cards),
        "iban": tuple(ibans),
        "vin": tuple(
            _vin(rng, wmi) for wmi in ("1HG", "1FT", "2T1", "3VW", "JHM", "WBA", "5YJ", "KMH") * 3
        ),
        "dea": tuple(_dea(rng) for _ in range(24)),
        "mbi": tuple(_mbi(rng, dashed=i % 2 == 0) for i in range(24)),
        "ssn": tuple(_ssn(rng, ("-", " ")[i % 2]) for i in range(24)),
    }


_GEN = _generated()

FAMILIES: dict[str, Family] = {
    "phone": Family(
        "PHONE",
        (
            "(801) 596-1887", "801.596.1887", "+1 801 596 1887", "1-800-843-9388",
            "(801) 596-1887 ext. 204", "212-555-0148", "(415) 555-2671", "+1-646-555-0199",
            "1 (312) 555-0127", "617.555.0143", "7135550182", "18005550123", "+14155550134",
            "303 555 0175", "(503)555-0116", "206-555-0160 ext 12", "1-888-555-0171",
            "1-877-555-0190", "(919) 555-0103 x7", "404-639-3311", "(202) 555-0111",
            "+1 (720) 555-0164", "1.800.555.0133", "773-555-0109 ext. 31", "(612) 555-0152",
            "480 555 0137", "1-800-CDC-INFO", "1-800-273-TALK", "1888693NDEP",
            "+44 20 7946 0958", "+49 30 901820", "+33 1 42 68 53 00", "+61 2 9374 4000",
            "+91 22 2778 2299",
        ),
        (
            "Contact the patient at {}.",
            "Daughter can be reached at {} after 5 pm.",
            "Please fax the records to {} before discharge.",
            "Call the family at {} with results.",
            "Emergency contact (spouse): {}.",
            "Patient's cell phone is {}, voicemail enabled.",
            "Pharmacy callback number {} was confirmed.",
        ),
    ),
    "phone_local": Family(
        "PHONE",
        ("596-1887", "555-0148", "555.0199", "867-5309", "555-0123", "555 0175", "555-0160"),
        (
            "Home phone: {}.",
            "Work tel: {}, leave a message.",
            "Clinic fax: {} (records office).",
            "Please call {} to confirm the appointment.",
        ),
    ),
    "email": Family(
        "EMAIL",
        (
            "jane.doe@example.com", "j.smith42@mail.example.org", "patient_ref+lab@example-health.net",
            "MARY.JONES@EXAMPLE.COM", "r.garcia@clinic.example.co.uk", "tkowalski@example.edu",
            "nurse.station3@hospital.example.org", "m_nguyen1961@example.net",
            "a.b.c@sub.domain.example.io", "pat.obrien@example.ie", "billing-dept@example-clinic.com",
            "l.chen@med.example.ca", "dr.patel@cardiology.example-hospital.org",
            "family.contact@example.com.au", "sam99@example.de", "K.Yamamoto@example.jp",
            "records-request@example.gov", "jose.hernandez.md@example.mx", "grandma.lee@example.net",
            "caregiver_2@example.org", "p.rossi@example.it", "info+intake@example-rehab.com",
            "olu.adeyemi@example.ng", "emma_w@example.co.nz",
        ),
        (
            "Patient e-mail: {}.",
            "Results were sent to {} on request.",
            "Send the discharge summary to {} and the GP.",
            "Contact the caregiver by email at {} if needed.",
        ),
    ),
    "url": Family(
        "URL",
        (
            "https://patientportal.example-health.org/chart/48213",
            "http://www.mychart.example.com/login?id=77812",
            "www.example-clinic.com/patients/jdoe",
            "https://drive.example.com/file/d/1AbCdEf/view",
            "http://192.168.1.24:8080/pacs/study/9912",
            "ftp://files.example.org/records/2019/scan.pdf",
            "https://www.example.org/telehealth/session?room=4471&pin=2208",
            "http://example.net/~jsmith/photos",
            "www.facebook.com/jane.doe.1962",
            "https://twitter.com/jdoe_runner",
            "https://www.linkedin.com/in/mary-jones-rn-4471",
            "http://photos.example.com/albums/family/2019",
            "https://example-hospital.org/mychart/Visit.aspx?encounter=88120034",
            "www.gofundme.com/f/help-tom-recover",
            "https://calendar.example.com/appointments/7731?patient=jdoe",
            "http://10.2.3.4/ecg/viewer?id=55102938",
            "https://www.instagram.com/run.with.jane/",
            "https://docs.example.com/d/1xYz-AbC/edit#heading=h.2",
            "www.example-dental.com/forms/intake_jsmith.pdf",
            "http://localhost:8042/orthanc/patients/0048291",
            "https://mail.example.com/mail/u/0/#inbox/FMfcgz",
            "https://www.example.org/obituaries/robert-king-1931",
            "HTTPS://PORTAL.EXAMPLE.COM/RESULTS/4471",
            "www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "The patient uploaded images to {} for review.",
            "Telehealth link: {} (expires in a week).",
            "See the personal blog at {} for the diet log.",
        ),
    ),
    "ssn": Family(
        "SSN",
        ("123-45-6789", "123 45 6789", "219-09-9999", *_GEN["ssn"]),
        (
            "Patient SSN: {}.",
            "Social Security number {} on file.",
            "Patient SSN {} verified at registration.",
            "Her social security no. is {}, per the intake form.",
        ),
    ),
    "ssn_bare": Family(
        "SSN",
        ("123456789", "219099999", "078221193", "501234567"),
        ("Patient SSN: {}.", "Social Security number: {}, confirmed."),
    ),
    "mrn": Family(
        "MRN",
        (
            "00482913", "4829133", "A1234567", "E00482913", "MC-0048291", "H-4829133",
            "20190003341", "778812", "0012-4471", "K88120034", "55102938", "RX0048812",
            "M000448210", "3391027", "UH-88-20417", "PT-0091822", "91-22-4471", "B7720015",
            "00771234-5", "SMH4410293", "60028841", "Z-0044718", "120044718", "C0091-2210",
        ),
        (
            "Patient MRN: {}.",
            "Medical Record #{} was reviewed.",
            "Outside MR# {} was requested.",
            "Medical record number: {}, admitted via ED.",
            "Outside chart #{} updated by nursing.",
            "Patient ID: {} on the wristband.",
            "Hospital No. {} was used for the transfer.",
            "Old MRN {} merged with the new chart.",
        ),
    ),
    "ipv4": Family(
        "IP",
        (
            "192.168.1.24", "10.0.0.17", "172.16.254.3", "8.8.8.8", "73.162.40.11",
            "203.0.113.45", "198.51.100.7", "100.64.12.200", "4.2.2.2", "66.249.66.1",
            "192.0.2.33", "10.10.1.254", "172.31.0.2", "24.48.96.192", "1.1.1.1", "255.255.255.0",
        ),
        (
            "Portal login came from IP address {} at night.",
            "The device reported to server {} without encryption.",
            "Remote access from IP {} was blocked.",
        ),
    ),
    "ipv6": Family(
        "IP",
        (
            "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
            "2001:0db8:0000:0000:0000:ff00:0042:8329", "2606:4700:4700::1111",
            "::ffff:192.0.2.128", "2001:db8::1", "2a00:1450:4007:80e::200e",
            "fd12:3456:789a:1::1",
        ),
        (
            "Portal login came from IP address {} at night.",
            "The home monitor uses the address {} on the clinic network.",
        ),
    ),
    "date": Family(
        "DATE",
        (
            "03/14/1962", "March 3, 2019", "2019-03-03", "3/3/19", "14 March 2019",
            "Mar. 3rd, 2019", "12/01/2020", "1/5/2021", "2020/11/30", "31.12.2018",
            "Jan 5, 2020", "September 30th, 2017", "5th of June, 2018", "07-04-1955",
            "2018 Oct 21", "February 29, 2016", "11/22/63", "Dec. 24, 2022",
        ),
        (
            "Patient DOB: {}.",
            "The patient was admitted on {} with chest pain.",
            "Discharged on {} in stable condition.",
            "Date of service: {}, outpatient clinic.",
            "Surgery was performed on {} without complications.",
            "Last seen in clinic {} for follow-up.",
        ),
    ),
    "date_no_year": Family(
        "DATE",
        ("March 3", "June 21st", "Sept. 9", "14 March", "3rd of May", "Jan 15", "October 2nd"),
        (
            "The patient was admitted on {} with chest pain.",
            "Discharged on {} in stable condition.",
            "Date of birth: {}, per the mother.",
            "She has been seen since {} for wound care.",
        ),
    ),
    "age": Family(
        "AGE",
        tuple(
            f"{age}{unit}"
            for age, unit in zip(
                range(90, 116),
                ("-year-old", " years old", " y/o", " yo", " year old", "-yr-old") * 5,
            )
        ),
        (
            "The patient is a {} woman with dementia.",
            "History obtained from the {} patient and his son.",
            "Retired teacher, {}, lives alone.",
        ),
    ),
    "account": Family(
        "ACCOUNT",
        (
            "4417-1234-5678-9113", "000123456789", "12-3456-7890123", "9876543210",
            "ACC-00981234", "0044 1234 5678", "7788120034", "20231104-0078",
            "321-009-884411", "55500011122",
        ),
        (
            "Account No. {} is past due.",
            "Billing account number: {}, self-pay.",
            "Please credit acct #{} for the copay.",
            "Bank account {} on file for refunds.",
            "Routing number {} belongs to the patient's bank.",
        ),
    ),
    "card": Family(
        "ACCOUNT",
        ("4111 1111 1111 1111", "4417-1234-5678-9113", "378282246310005", *_GEN["card"]),
        (
            "Copay was paid with card {} at the front desk.",
            "Card on file: {}, expires next year.",
            "Patient's daughter used the card {} for the bill.",
        ),
    ),
    "iban": Family(
        "ACCOUNT",
        ("GB82 WEST 1234 5698 7654 32", *_GEN["iban"]),
        ("Refund to IBAN {} was approved.", "Travel insurer pays into {} within days."),
    ),
    "health_plan": Family(
        "HEALTH_PLAN",
        (
            "XJH123456789", "W123456789", "ZGP900112233", "H12345678-01", "BCX4458820013",
            "YUB88120034", "MCD-0078812", "00912345601", "JQW55102938", "A00481122-02",
            "QRS-4471-0098", "2208814471",
        ),
        (
            "Primary member ID: {}.",
            "Insurance ID {} (primary).",
            "Policy number: {}, group plan.",
            "Subscriber ID {} belongs to the husband.",
            "Medicaid ID: {} was verified.",
            "Health plan number {} on the card.",
            "Beneficiary ID {} for the secondary plan.",
        ),
    ),
    "mbi": Family(
        "HEALTH_PLAN",
        ("1EG4-TE5-MK73", "1EG4TE5MK73", *_GEN["mbi"]),
        (
            "Medicare Beneficiary Identifier {} on file.",
            "Patient MBI: {}, eligibility confirmed.",
            "Medicare number {} (new card).",
        ),
    ),
    "license": Family(
        "LICENSE",
        (
            "D1234567", "MD-04-55821", "A1234-56789", "S53012288", "RN2287614", "NY-0042881",
            "F255-921-50-094-0", "PA0188127", "LIC-2019-4471", "C8812003",
        ),
        (
            "Driver's license number {} was copied.",
            "Medical license no. {} (state board).",
            "State license: {}, expires next year.",
            "Certificate No. {} issued by the registry.",
            "Nursing license #{} was verified.",
        ),
    ),
    "dea": Family(
        "LICENSE",
        ("AB1234563", *_GEN["dea"]),
        ("Prescriber {} signed the order.", "DEA number {} was on the script."),
    ),
    "vin": Family(
        "VEHICLE",
        ("1HGCM82633A004352", "1M8GDM9AXKP042788", *_GEN["vin"]),
        (
            "Vehicle VIN: {} (MVA report).",
            "The patient's car, VIN {}, was towed.",
            "Vehicle identification number {} in the police report.",
        ),
    ),
    "plate": Family(
        "VEHICLE",
        ("7ABC123", "ABC-1234", "8XYZ392", "4GHJ 771", "PD 4471", "2RTM880"),
        (
            "License plate {} was noted by EMS.",
            "The patient's license plate number is {}.",
        ),
    ),
    "device": Family(
        "DEVICE",
        (
            "SN-4421-99", "PM-2218-0047", "A4B7-99120-XZ", "SN83311927", "356938035643809",
            "IPG-7712-0034", "G4471882", "(01)00643169007222", "MX-2201-887",
            "ICD-0098812-A", "PJN812233H", "CGM-0055-1123", "RNS300M-44120", "TX2288104",
            "00643169-0072", "HM3-009981", "L2021-0448-17", "VNS-106-22871", "AB12CD3456",
            "D0144718Q",
        ),
        (
            "Pacemaker serial number {} was interrogated.",
            "Insulin pump device ID: {}.",
            "Implant serial no. {} recorded in the op note.",
            "Ventilator S/N {} (home unit).",
        ),
    ),
    "mac": Family(
        "DEVICE",
        ("00:1A:2B:3C:4D:5E", "A4-5E-60-E8-12-9F", "f0:18:98:4c:2b:11", "3C-22-FB-90-AB-CD"),
        (
            "The telemetry unit's MAC address {} was logged.",
            "Glucometer hardware address {} paired with the phone.",
        ),
    ),
}
"""Named groups of identifiers with the carrier sentences that suit them."""

_BOUNDARY = re.compile(r"(?<=[.!?])[ \t]+(?=[A-Z])|\n")


def plant_pii(
    docs: list[Doc],
    rng_seed: int,
    per_doc: tuple[int, int] = (1, 3),
    fraction: float = 1.0,
    families: tuple[str, ...] | None = None,
) -> tuple[list[Doc], list[tuple[str, str, str]]]:
    """Copies of ``docs`` with identifiers planted, and ``[(doc_id, type, value)]``.

    A ``fraction`` of the documents (chosen by ``rng_seed``) each get between
    ``per_doc[0]`` and ``per_doc[1]`` identifiers from ``families`` (default: all),
    every one in its own carrier sentence at a sentence boundary. A value never repeats
    inside a document and never occurs in the document's own text, so it can be looked
    up afterwards. The input documents are not changed.
    """
    rng = random.Random(rng_seed)
    names = sorted(FAMILIES if families is None else families)
    out: list[Doc] = []
    planted: list[tuple[str, str, str]] = []
    for doc in docs:
        text = doc["text"]
        if rng.random() >= fraction:
            out.append(dict(doc))
            continue
        # Cuts come from the original text only, so that no carrier lands inside another
        # ("Implant serial no. | ICD-..." would part a label from its value).
        boundaries = [m.start() for m in _BOUNDARY.finditer(text)] + [len(text)]
        inserts: list[tuple[int, str]] = []
        used: set[str] = set()
        for _ in range(rng.randint(*per_doc)):
            family = FAMILIES[rng.choice(names)]
            value = rng.choice([v for v in family.values if v not in used and v not in text])
            used.add(value)
            inserts.append((rng.choice(boundaries), rng.choice(family.carriers).format(value)))
            planted.append((doc["id"], family.pii_type, value))
        for cut, sentence in sorted(inserts, key=lambda item: item[0], reverse=True):
            text = text[:cut] + " " + sentence + text[cut:]
        out.append({**doc, "text": text})
    return out, planted
