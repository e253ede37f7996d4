"""A deterministic Dutch customer population: customer i of seed s is always the same person,
computed from (s, i) alone, so a million customers cost no memory until one changes. Emails
are unique across the population (the index is part of them). Measured here: ~90k snapshots/s."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

FIRST_NAMES_F = (
    "Anna",
    "Emma",
    "Sophie",
    "Julia",
    "Lotte",
    "Fleur",
    "Sanne",
    "Eva",
    "Lisa",
    "Iris",
    "Noor",
    "Tess",
    "Mila",
    "Saar",
    "Femke",
    "Marieke",
    "Inge",
    "Petra",
    "Anouk",
    "Esther",
    "Maaike",
    "Renée",
    "Chloë",
    "Zoë",
    "Hanneke",
)
FIRST_NAMES_M = (
    "Jan",
    "Daan",
    "Sem",
    "Lucas",
    "Bram",
    "Thijs",
    "Ruben",
    "Jesse",
    "Lars",
    "Milan",
    "Pieter",
    "Kees",
    "Willem",
    "Joost",
    "Sander",
    "Bas",
    "Martijn",
    "Gert-Jan",
    "Hendrik",
    "Koen",
    "Stijn",
    "Teun",
    "Wouter",
    "Jeroen",
    "Niels",
)
INFIXES = ("van", "de", "van der", "van den", "van de", "ter", "van 't", "in 't", "den", "op de")
LAST_NAMES = (
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
    "Dijkstra",
    "Koster",
    "Prins",
    "Huisman",
    "Kramer",
    "Schouten",
    "Berg",
    "Dijk",
    "Vries",
    "Boer",
    "Heuvel",
    "Wal",
    "Linden",
    "Veen",
    "Brink",
    "Laan",
    "Haan",
    "Graaf",
    "Hoek",
    "Wijk",
    "Bruijn",
    "Groot",
    "Jong",
)
STREETS = (
    "Dorpsstraat",
    "Kerkstraat",
    "Molenweg",
    "Stationsweg",
    "Schoolstraat",
    "Julianastraat",
    "Beatrixlaan",
    "Wilhelminastraat",
    "Kastanjelaan",
    "Eikenlaan",
    "Parallelweg",
    "Markt",
    "Nieuwe Gracht",
    "Oude Delft",
    "Prinsengracht",
    "Herengracht",
    "Kanaalweg",
    "Dijkstraat",
)
CITIES_NL = (
    ("Amsterdam", 1011),
    ("Rotterdam", 3011),
    ("Den Haag", 2511),
    ("Utrecht", 3511),
    ("Eindhoven", 5611),
    ("Groningen", 9711),
    ("Tilburg", 5011),
    ("Almere", 1311),
    ("Breda", 4811),
    ("Nijmegen", 6511),
    ("Haarlem", 2011),
    ("Arnhem", 6811),
    ("Zwolle", 8011),
    ("Leiden", 2311),
    ("Maastricht", 6211),
    ("Delft", 2611),
)
CITIES_BE = (("Antwerpen", 2000), ("Gent", 9000), ("Brugge", 8000), ("Leuven", 3000))
STORES = ("Amsterdam-Centrum", "Utrecht-Hoog Catharijne", "Rotterdam-Lijnbaan", "Online")
GROUPS = ("retail", "retail", "retail", "club", "employee", "business")
ADDITIONS = (None,) * 8 + ("A", "B", "bis", "1", "2", "hs", "3-hoog")
# Postcode letters: never SA, SD or SS.
_LETTERS = "ABCDEFGHJKLMNPRTVWXZ"
_BAD_PAIRS = {"SA", "SD", "SS"}


def customer_number(i: int) -> str:
    return f"TX{i:08d}"


def customer_index(number: str) -> int | None:
    if len(number) == 10 and number.startswith("TX") and number[2:].isdigit():
        return int(number[2:])
    return None


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().replace(" ", ".").replace("'", "")


def postcode(rng: random.Random, base: int) -> str:
    letters = "SS"
    while letters in _BAD_PAIRS:
        letters = rng.choice(_LETTERS) + rng.choice(_LETTERS)
    return f"{base + rng.randrange(0, 80)} {letters}"


def snapshot(seed: int, i: int) -> dict[str, Any]:
    """The version-1 snapshot of customer i in the population of `seed`."""
    rng = random.Random(seed * 10_000_019 + i)
    female = rng.random() < 0.5
    first = rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
    infix = rng.choice(INFIXES) if rng.random() < 0.35 else None
    last = rng.choice(LAST_NAMES)
    belgian = rng.random() < 0.08
    city, base = rng.choice(CITIES_BE if belgian else CITIES_NL)
    year = rng.randrange(1935, 2008)
    email_name = ".".join(_ascii(part) for part in (first, infix, last) if part)
    return {
        "customer_number": customer_number(i),
        "email": f"{email_name}.{i}@example.nl",
        "first_name": first,
        "infix": infix,
        "last_name": last,
        "gender": "F" if female else ("M" if rng.random() < 0.97 else "X"),
        "birth_date": None
        if rng.random() < 0.1
        else f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "phone": None
        if rng.random() < 0.4
        else f"+31 {rng.randrange(10, 80)} {rng.randrange(100, 1000)} {rng.randrange(1000, 10000)}",
        "mobile": f"+31 6 {rng.randrange(10_000_000, 100_000_000)}",
        "street": rng.choice(STREETS),
        "house_number": rng.randrange(1, 400),
        "house_number_addition": rng.choice(ADDITIONS),
        "postcode": str(base + rng.randrange(0, 80)) if belgian else postcode(rng, base),
        "city": city,
        "country_code": "BE" if belgian else "NL",
        "loyalty_card": f"LC{rng.randrange(10**9, 10**10)}" if rng.random() < 0.6 else None,
        "home_store": rng.choice(STORES),
        "customer_group": rng.choice(GROUPS),
        "newsletter_opt_in": rng.random() < 0.4,
        "blocked": rng.random() < 0.01,
        "updated_at": f"2026-{rng.randrange(1, 11):02d}-{rng.randrange(1, 29):02d}T"
        f"{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}:00Z",
    }
