"""A deterministic ledger for one small business over the calendar year 2025.

The business is a small Berlin design studio. Everything comes from one seeded
`random.Random` and fixed tables below, never from the wall clock, so every
process (tests, demos, benchmarks) sees byte-identical data for the same seed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import cast

from google.type import date_pb2, dayofweek_pb2

from examples.ledger.v1 import ledger_pb2

C = ledger_pb2.Category
YEAR = 2025
CURRENCY = "EUR"

# One vendor per line: name | domain | default category | country | city | street |
# postal code | opening-hours profile. A text table stays readable where tuples
# would be wrapped over eight lines each.
_VENDOR_TABLE = """
Spreeblick Immobilien GmbH | spreeblick-immobilien.de | RENT | DE | Berlin | Köpenicker Str. 154 | 10997 | office
Hafenspeicher Coworking | hafenspeicher-cowork.de | RENT | DE | Hamburg | Am Sandtorkai 27 | 20457 | cowork
Vattenfall Europe Sales | vattenfall.de | UTILITIES | DE | Hamburg | Überseering 12 | 22297 | support
Berliner Wasserbetriebe | bwb.de | UTILITIES | DE | Berlin | Neue Jüdenstr. 1 | 10179 | office
Deutsche Telekom | telekom.de | UTILITIES | DE | Bonn | Friedrich-Ebert-Allee 140 | 53113 | support
Vodafone GmbH | vodafone.de | UTILITIES | DE | Düsseldorf | Ferdinand-Braun-Platz 1 | 40549 | support
GASAG Berlin | gasag.de | UTILITIES | DE | Berlin | EUREF-Campus 23-24 | 10829 | office
Jana Weber | janaweber.design | PAYROLL | DE | Berlin | Reuterstr. 41 | 12047 | none
Lukas Hoffmann | lukashoffmann.dev | PAYROLL | DE | Berlin | Weserstr. 180 | 12045 | none
Sophie Laurent | sophielaurent.fr | PAYROLL | FR | Lyon | 12 Rue Mercière | 69002 | none
Daan de Vries | daandevries.nl | PAYROLL | NL | Utrecht | Oudegracht 212 | 3511 NR | none
Mia Schneider | miaschneider.de | PAYROLL | DE | Potsdam | Brandenburger Str. 9 | 14467 | none
Ciarán O'Brien | obrien.ie | PAYROLL | IE | Dublin | 14 Camden Row | D08 K2R6 | none
Figma Ireland Ltd | figma.com | SOFTWARE | IE | Dublin | 1 Grand Canal Square | D02 P820 | online
Atlassian B.V. | atlassian.com | SOFTWARE | NL | Amsterdam | Singel 236 | 1016 AB | online
GitHub B.V. | github.com | SOFTWARE | NL | Amsterdam | Prins Bernhardplein 200 | 1097 JB | online
Adobe Systems Software Ireland | adobe.com | SOFTWARE | IE | Dublin | 4-6 Riverwalk | D24 DCW0 | online
Hetzner Online GmbH | hetzner.com | SOFTWARE | DE | Gunzenhausen | Industriestr. 25 | 91710 | support
Slack Technologies Ltd | slack.com | SOFTWARE | IE | Dublin | One Park Place | D02 E651 | online
Notion Labs Europe | notion.so | SOFTWARE | IE | Dublin | 70 Sir John Rogerson's Quay | D02 R296 | online
lexoffice by Haufe | lexoffice.de | SOFTWARE | DE | Freiburg | Munzinger Str. 9 | 79111 | support
Mailjet SAS | mailjet.com | SOFTWARE | FR | Paris | 13-13 bis Rue de l'Aubrac | 75012 | online
1Password Europe | 1password.com | SOFTWARE | NL | Amsterdam | Keizersgracht 62 | 1015 CS | online
Deutsche Bahn Fernverkehr | bahn.de | TRAVEL | DE | Berlin | Europaplatz 1 | 10557 | station
Lufthansa | lufthansa.com | TRAVEL | DE | Köln | Venloer Str. 151-153 | 50672 | support
KLM Royal Dutch Airlines | klm.nl | TRAVEL | NL | Amstelveen | Amsterdamseweg 55 | 1182 GP | support
SNCF Voyageurs | sncf-connect.com | TRAVEL | FR | Saint-Denis | 9 Rue Jean-Philippe Rameau | 93200 | station
Motel One Berlin-Hauptbahnhof | motel-one.com | TRAVEL | DE | Berlin | Invalidenstr. 54 | 10557 | hotel
citizenM Amsterdam South | citizenm.com | TRAVEL | NL | Amsterdam | Prinses Irenestraat 30 | 1077 WX | hotel
FREE NOW | free-now.com | TRAVEL | DE | Hamburg | Stresemannstr. 29 | 22769 | online
Hotel Sacher Wien | sacher.com | TRAVEL | AT | Wien | Philharmoniker Str. 4 | 1010 | hotel
Thalys / Eurostar | eurostar.com | TRAVEL | BE | Bruxelles | Place Marcel Broodthaers 5 | 1060 | station
Northwind Coffee | northwind-coffee.nl | MEALS | NL | Amsterdam | Westerstraat 86 | 1015 MN | cafe
The Barn Kreuzberg | thebarn.de | MEALS | DE | Berlin | Schönleinstr. 32 | 10967 | cafe
Markthalle Neun Kantine | markthalleneun.de | MEALS | DE | Berlin | Eisenbahnstr. 42-43 | 10997 | restaurant
Mustafas Gemüse Kebap | mustafas.de | MEALS | DE | Berlin | Mehringdamm 32 | 10961 | restaurant
Café Einstein Stammhaus | cafeeinstein.com | MEALS | DE | Berlin | Kurfürstenstr. 58 | 10785 | cafe
Le Petit Bistro Lyon | lepetitbistro-lyon.fr | MEALS | FR | Lyon | 8 Rue du Boeuf | 69005 | restaurant
Lieferando | lieferando.de | MEALS | DE | Berlin | Cuvrystr. 50-52 | 10997 | online
Five Elephant | fiveelephant.com | MEALS | DE | Berlin | Reichenberger Str. 101 | 10999 | cafe
Figlmüller | figlmueller.at | MEALS | AT | Wien | Wollzeile 5 | 1010 | restaurant
Catering Kollektiv Berlin | catering-kollektiv.de | MEALS | DE | Berlin | Oranienstr. 25 | 10999 | office
Brasserie Lipp | brasserielipp.fr | MEALS | FR | Paris | 151 Boulevard Saint-Germain | 75006 | restaurant
Papier & Co Berlin | papierundco.de | OFFICE_SUPPLIES | DE | Berlin | Bergmannstr. 17 | 10961 | shop
Cyberport | cyberport.de | OFFICE_SUPPLIES | DE | Dresden | Am Brauhaus 5 | 01099 | shop
IKEA Deutschland | ikea.de | OFFICE_SUPPLIES | DE | Berlin | Sachsendamm 47 | 10829 | store
Apple Store Kurfürstendamm | apple.com | OFFICE_SUPPLIES | DE | Berlin | Kurfürstendamm 26 | 10719 | store
Viking Direkt | viking-direkt.de | OFFICE_SUPPLIES | DE | Großostheim | Linus-Pauling-Str. 2 | 63762 | support
Coolblue | coolblue.nl | OFFICE_SUPPLIES | NL | Rotterdam | Weena 664 | 3012 CN | online
Google Ireland Ltd | ads.google.com | MARKETING | IE | Dublin | Gordon House, Barrow Street | D04 E5W5 | online
Meta Platforms Ireland | facebook.com | MARKETING | IE | Dublin | 4 Grand Canal Square | D02 X525 | online
LinkedIn Ireland | linkedin.com | MARKETING | IE | Dublin | Wilton Place | D02 CK83 | online
Druckerei Lindner | druckerei-lindner.de | MARKETING | DE | Leipzig | Karl-Heine-Str. 93 | 04229 | shop
Ströer Media | stroeer.de | MARKETING | DE | Köln | Ströer-Allee 1 | 50999 | office
Kanzlei Brandt & Partner | brandt-partner.de | PROFESSIONAL_SERVICES | DE | Berlin | Friedrichstr. 95 | 10117 | office
Steuerberatung Krüger | stb-krueger.de | PROFESSIONAL_SERVICES | DE | Berlin | Schlüterstr. 38 | 10629 | office
Van Dijk Consultancy | vandijk-consultancy.nl | PROFESSIONAL_SERVICES | NL | Den Haag | Lange Voorhout 44 | 2514 EG | office
Cabinet Moreau Avocats | moreau-avocats.fr | PROFESSIONAL_SERVICES | FR | Paris | 27 Avenue de l'Opéra | 75001 | office
Allianz Versicherungs-AG | allianz.de | INSURANCE | DE | München | Königinstr. 28 | 80802 | support
HDI Versicherung | hdi.de | INSURANCE | DE | Hannover | HDI-Platz 1 | 30659 | support
AXA Belgium | axa.be | INSURANCE | BE | Bruxelles | Place du Trône 1 | 1000 | support
Acme Robotics GmbH | acme-robotics.de | INCOME | DE | München | Leopoldstr. 244 | 80807 | office
Zalando SE | zalando.de | INCOME | DE | Berlin | Valeska-Gert-Str. 5 | 10243 | office
Bloemen van Houten B.V. | vanhouten-bloemen.nl | INCOME | NL | Aalsmeer | Legmeerdijk 313 | 1431 GB | shop
Maison Dupont | maisondupont.fr | INCOME | FR | Bordeaux | 45 Cours de l'Intendance | 33000 | shop
Wiener Kaffeerösterei | wiener-roesterei.at | INCOME | AT | Wien | Mariahilfer Str. 88 | 1070 | cafe
Brouwerij De Klok | brouwerijdeklok.be | INCOME | BE | Gent | Korenmarkt 16 | 9000 | restaurant
Galway Outdoor Ltd | galwayoutdoor.ie | INCOME | IE | Galway | 12 Shop Street | H91 X2C4 | shop
Stadtwerke Potsdam | swp-potsdam.de | INCOME | DE | Potsdam | Steinstr. 104-106 | 14480 | office
"""

_PHONE_PREFIX = {
    "DE": "+49",
    "NL": "+31",
    "FR": "+33",
    "AT": "+43",
    "BE": "+32",
    "IE": "+353",
}

_D = dayofweek_pb2
_WEEKDAYS = (_D.MONDAY, _D.TUESDAY, _D.WEDNESDAY, _D.THURSDAY, _D.FRIDAY)
_WEEKEND = (_D.SATURDAY, _D.SUNDAY)
_WORK_SAT = (*_WEEKDAYS, _D.SATURDAY)
# Profile -> ((days, opens, closes), ...).
_HOURS: dict[str, tuple[tuple[tuple[int, ...], str, str], ...]] = {
    "office": ((_WEEKDAYS, "09:00", "17:30"),),
    "cowork": ((_WEEKDAYS, "08:00", "20:00"), ((_D.SATURDAY,), "10:00", "16:00")),
    "support": ((_WEEKDAYS, "08:00", "20:00"), ((_D.SATURDAY,), "09:00", "14:00")),
    "online": ((_WEEKDAYS, "09:00", "18:00"),),
    "station": ((_WEEKDAYS + _WEEKEND, "05:30", "23:00"),),
    "hotel": ((_WEEKDAYS + _WEEKEND, "00:00", "23:59"),),
    "cafe": ((_WEEKDAYS, "07:30", "18:00"), (_WEEKEND, "09:00", "17:00")),
    "restaurant": ((_WORK_SAT, "11:30", "23:00"),),
    "shop": ((_WEEKDAYS, "10:00", "19:00"), ((_D.SATURDAY,), "10:00", "16:00")),
    "store": ((_WORK_SAT, "10:00", "20:00"),),
    "none": (),
}

# Category -> (transactions per vendor per year range, amount range in cents).
_CARD_PATTERNS: dict[ledger_pb2.Category, tuple[tuple[int, int], tuple[int, int]]] = {
    C.CATEGORY_TRAVEL: ((25, 55), (1_890, 64_000)),
    C.CATEGORY_MEALS: ((80, 150), (650, 16_500)),
    C.CATEGORY_OFFICE_SUPPLIES: ((10, 28), (1_299, 189_900)),
    C.CATEGORY_MARKETING: ((6, 20), (4_500, 240_000)),
    C.CATEGORY_PROFESSIONAL_SERVICES: ((4, 10), (35_000, 480_000)),
    C.CATEGORY_INCOME: ((10, 30), (80_000, 1_450_000)),
}
# Monthly debits: category -> amount range in cents (fixed per vendor, small jitter).
_MONTHLY: dict[ledger_pb2.Category, tuple[int, int]] = {
    C.CATEGORY_RENT: (120_000, 380_000),
    C.CATEGORY_UTILITIES: (3_900, 42_000),
    C.CATEGORY_PAYROLL: (260_000, 540_000),
    C.CATEGORY_SOFTWARE: (1_200, 89_900),
    C.CATEGORY_INSURANCE: (8_900, 61_000),
}
_JITTERED = {C.CATEGORY_UTILITIES}

_PROJECTS = ("website-relaunch", "brand-refresh", "app-redesign", "trade-fair", "internal")
_COST_CENTERS = ("studio", "sales", "admin")
_TRIPS = ("amsterdam-workshop", "lyon-client-visit", "vienna-conference", "paris-pitch")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass
class LedgerData:
    """The generated ledger: vendors by id and transactions oldest first."""

    vendors: dict[str, ledger_pb2.Vendor] = field(default_factory=dict)
    transactions: list[ledger_pb2.Transaction] = field(default_factory=list)
    currency: str = CURRENCY


def month_name(month: int) -> str:
    """English month name for 1..12."""
    return _MONTHS[month - 1]


def _timestamp_of(day: dt.date, rng: random.Random) -> dt.datetime:
    # Banks book during business hours; a seeded time keeps the output stable.
    return dt.datetime(
        day.year, day.month, day.day, rng.randint(6, 21), rng.randint(0, 59), tzinfo=dt.UTC
    )


def _phone(country: str, rng: random.Random) -> str:
    area = rng.randint(20, 89)
    return f"{_PHONE_PREFIX[country]} {area} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"


def _vendors(rng: random.Random) -> dict[str, ledger_pb2.Vendor]:
    vendors: dict[str, ledger_pb2.Vendor] = {}
    rows = [line.split(" | ") for line in _VENDOR_TABLE.strip().splitlines()]
    for index, (name, domain, category_name, country, city, street, postal, profile) in enumerate(
        rows, start=1
    ):
        category = cast(ledger_pb2.Category, ledger_pb2.Category.Value(f"CATEGORY_{category_name}"))
        vendor_id = f"ven_{index:03d}"
        hours = [
            ledger_pb2.OpeningHours(day=day, opens=opens, closes=closes)
            for days, opens, closes in _HOURS[profile]
            for day in days
        ]
        vendor = ledger_pb2.Vendor(
            id=vendor_id,
            name=name,
            website=f"https://www.{domain}" if domain.count(".") == 1 else f"https://{domain}",
            phone=_phone(country, rng),
            address=ledger_pb2.Address(
                street=street, city=city, postal_code=postal, country_code=country
            ),
            hours=hours,
            default_category=category,
        )
        updated = dt.date(2024, rng.randint(1, 12), rng.randint(1, 28))
        vendor.update_time.FromDatetime(_timestamp_of(updated, rng))
        vendors[vendor_id] = vendor
    return vendors


def _memo(
    vendor: ledger_pb2.Vendor, category: ledger_pb2.Category, day: dt.date, rng: random.Random
) -> str:
    upper = vendor.name.upper()
    city = vendor.address.city.upper()
    period = f"{month_name(day.month)} {day.year}"
    if category == C.CATEGORY_INCOME:
        return f"SEPA CT from {vendor.name} Invoice INV-{day.year}-{rng.randint(100, 999)}"
    if category == C.CATEGORY_PAYROLL:
        return f"Salary {period} {vendor.name}"
    if category == C.CATEGORY_RENT:
        return f"SEPA DD {vendor.name} Rent {period}"
    if category in (C.CATEGORY_UTILITIES, C.CATEGORY_INSURANCE):
        return f"SEPA DD {vendor.name} Ref {day:%Y-%m}-{rng.randint(10000, 99999)}"
    if category == C.CATEGORY_SOFTWARE:
        return f"CARD 4821 {upper} SUBSCRIPTION {day:%m/%Y}"
    if category == C.CATEGORY_PROFESSIONAL_SERVICES:
        return f"SEPA CT {vendor.name} Rechnung {rng.randint(2000, 9999)}/{day.year}"
    return f"CARD 4821 {upper} {city}"


def _days(rng: random.Random, count: int) -> list[dt.date]:
    start = dt.date(YEAR, 1, 1)
    return [start + dt.timedelta(days=rng.randrange(365)) for _ in range(count)]


def _labels(category: ledger_pb2.Category, rng: random.Random) -> dict[str, str]:
    labels: dict[str, str] = {}
    roll = rng.random()
    if category == C.CATEGORY_TRAVEL and roll < 0.5:
        labels["trip"] = rng.choice(_TRIPS)
    elif category in (C.CATEGORY_MARKETING, C.CATEGORY_INCOME, C.CATEGORY_SOFTWARE) and roll < 0.4:
        labels["project"] = rng.choice(_PROJECTS)
    if rng.random() < 0.15:
        labels["cost_center"] = rng.choice(_COST_CENTERS)
    return labels


def _raw_transactions(
    vendors: dict[str, ledger_pb2.Vendor], rng: random.Random
) -> list[tuple[dt.date, int, ledger_pb2.Vendor, ledger_pb2.Category]]:
    """(day, amount, vendor, category) for the whole year, unordered."""
    raw: list[tuple[dt.date, int, ledger_pb2.Vendor, ledger_pb2.Category]] = []
    for vendor in vendors.values():
        category = vendor.default_category
        if category in _MONTHLY:
            low, high = _MONTHLY[category]
            base = rng.randrange(low, high, 100)
            due = rng.randint(1, 28)
            for month in range(1, 13):
                amount = base
                if category in _JITTERED:
                    amount = int(base * rng.uniform(0.8, 1.25))
                raw.append((dt.date(YEAR, month, due), -amount, vendor, category))
            continue
        (count_low, count_high), (low, high) = _CARD_PATTERNS[category]
        for day in _days(rng, rng.randint(count_low, count_high)):
            # Log-uniform so small purchases are common and large ones rare.
            amount = int(low * (high / low) ** rng.random())
            sign = 1 if category == C.CATEGORY_INCOME else -1
            booked = category
            roll = rng.random()
            if sign < 0 and roll < 0.03:
                sign = 1  # a refund
            elif roll < 0.06 and category == C.CATEGORY_TRAVEL:
                booked = C.CATEGORY_MEALS  # breakfast booked at a hotel
            elif roll < 0.08 and category != C.CATEGORY_INCOME:
                booked = C.CATEGORY_UNSPECIFIED  # not categorised yet
            raw.append((day, sign * amount, vendor, booked))
    return raw


def generate(seed: int = 7) -> LedgerData:
    """Build the ledger for `seed`; the same seed always gives the same data."""
    rng = random.Random(seed)
    vendors = _vendors(rng)
    raw = _raw_transactions(vendors, rng)
    raw.sort(key=lambda item: (item[0], item[2].id, item[1]))
    transactions: list[ledger_pb2.Transaction] = []
    for index, (day, amount, vendor, category) in enumerate(raw, start=1):
        memo = _memo(vendor, category, day, rng)
        if amount > 0 and category != C.CATEGORY_INCOME:
            memo = f"REFUND {memo}"
        txn = ledger_pb2.Transaction(
            id=f"txn_{index:06d}",
            booked_date=date_pb2.Date(year=day.year, month=day.month, day=day.day),
            amount_minor=amount,
            currency=CURRENCY,
            vendor_id=vendor.id,
            category=category,
            memo=memo,
            labels=_labels(category, rng),
        )
        txn.create_time.FromDatetime(_timestamp_of(day, rng))
        transactions.append(txn)
    return LedgerData(vendors=vendors, transactions=transactions)
