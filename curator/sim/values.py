"""Plausible values drawn from a JSON schema and the names around it.

The scripted backend needs concrete values three times: arguments for the
requests its user writes, JSON bodies for the responses its executor plays, and
small specs for offline toolset generation. A value is picked from the schema
(``enum``, ``format``, bounds, type) first and from the parameter's name second
(``city`` → a city), so any toolset gets sensible values, not ``"string"``.
"""
from __future__ import annotations

import random
import re
from typing import Any, Mapping

CITIES = ["Paris", "Oslo", "Lima", "Tokyo", "Cairo", "Quito", "Perth", "Dakar", "Lisbon", "Seoul", "Denver",
          "Nairobi", "Hanoi", "Montreal", "Krakow", "Porto", "Auckland", "Bogota", "Reykjavik", "Marrakesh"]
COUNTRIES = ["France", "Norway", "Peru", "Japan", "Egypt", "Ecuador", "Australia", "Senegal", "Portugal", "Canada"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CHF", "NOK", "PEN", "KRW", "CAD", "AUD"]
WORDS = ["serendipity", "ephemeral", "lucid", "resilient", "meander", "quaint", "candor", "zephyr", "gregarious",
         "taciturn", "ubiquitous", "verdant", "wistful", "mellifluous", "sonder"]
TITLES = ["The Left Hand of Darkness", "Middlemarch", "The Remains of the Day", "Beloved", "Invisible Cities",
          "The Name of the Rose", "Things Fall Apart", "Piranesi", "The Dispossessed", "Station Eleven"]
AUTHORS = ["Ursula K. Le Guin", "George Eliot", "Kazuo Ishiguro", "Toni Morrison", "Italo Calvino",
           "Umberto Eco", "Chinua Achebe", "Susanna Clarke", "Emily St. John Mandel", "Jorge Luis Borges"]
PEOPLE = ["Ana", "Kofi", "Mei", "Lars", "Priya", "Tomas", "Yuki", "Omar", "Ines", "Sam"]
TOPICS = ["team sync", "dentist", "project review", "lunch with Ana", "yoga class", "budget planning",
          "flight to Oslo", "book club", "1:1 with Kofi", "quarterly report"]
LANGUAGES = ["en", "fr", "es", "de", "ja", "pt"]
CONDITIONS = ["sunny", "partly cloudy", "light rain", "overcast", "thunderstorms", "snow showers", "fog", "clear"]
GENRES = ["science fiction", "mystery", "history", "poetry", "fantasy", "biography"]
WORDY = ["alpha", "harbor", "summit", "meadow", "cobalt", "lantern", "orbit", "willow", "granite", "ember"]

#: Name fragments → pools, tried in order against the lower-cased property name.
_NAMED: tuple[tuple[str, list[Any]], ...] = (
    ("city", CITIES), ("location", CITIES), ("place", CITIES), ("destination", CITIES), ("origin", CITIES),
    ("country", COUNTRIES), ("currency", CURRENCIES), ("from", CURRENCIES), ("to", CURRENCIES),
    ("base", CURRENCIES), ("target", CURRENCIES), ("symbol", CURRENCIES),
    ("word", WORDS), ("term", WORDS), ("nym", WORDS), ("author", AUTHORS), ("title", TITLES), ("book", TITLES),
    ("genre", GENRES), ("condition", CONDITIONS), ("summary", CONDITIONS), ("attendee", PEOPLE),
    ("name", PEOPLE), ("person", PEOPLE), ("subject", TOPICS), ("topic", TOPICS), ("event", TOPICS),
    ("lang", LANGUAGES), ("query", TITLES + WORDS), ("keyword", WORDS), ("q", WORDS),
)


def pick_named(name: str, rng: random.Random) -> Any | None:
    """A value chosen by the property's name, or None when no pool fits."""
    key = name.lower()
    for fragment, pool in _NAMED:
        if fragment == key or (len(fragment) > 2 and fragment in key):
            return rng.choice(pool)
    return None


def iso_date(rng: random.Random) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def iso_time(rng: random.Random) -> str:
    return f"{rng.randint(7, 19):02d}:{rng.choice(['00', '15', '30', '45'])}"


def value_for(schema: Mapping[str, Any] | None, name: str, rng: random.Random, depth: int = 0) -> Any:
    """One plausible value that validates against ``schema`` (for the schemas tools use in practice)."""
    schema = schema if isinstance(schema, Mapping) else {}
    if "enum" in schema and schema["enum"]:
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return value_for(schema[key][0], name, rng, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "integer":
        return rng.randint(*_bounds(schema, name, integer=True))
    if kind == "number":
        low, high = _bounds(schema, name, integer=False)
        return round(rng.uniform(low, high), 1)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), min(int(schema.get("maxItems", 3)), rng.randint(1, 3)))
        singular = name[:-1] if name.endswith("s") else name
        return [value_for(schema.get("items"), singular, rng, depth + 1) for _ in range(count)]
    if kind == "object":
        if depth > 3:
            return {}
        props = schema.get("properties") or {}
        return {key: value_for(sub, key, rng, depth + 1) for key, sub in props.items()}
    if kind == "null":
        return None
    return _string(schema, name, rng)


def _bounds(schema: Mapping[str, Any], name: str, *, integer: bool) -> tuple[float, float]:
    key = name.lower()
    low, high = (1, 7) if "day" in key else (1, 10) if key in ("limit", "count", "n", "max_results") else (0, 100)
    if "temp" in key:
        low, high = -5, 35
    if "amount" in key or "price" in key:
        low, high = 5, 500
    if "year" in key:
        low, high = 1950, 2024
    low = schema.get("minimum", low)
    high = schema.get("maximum", max(high, low))
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if integer else 0.1)
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - (1 if integer else 0.1)
    return (int(low), int(high)) if integer else (float(low), float(high))


def _string(schema: Mapping[str, Any], name: str, rng: random.Random) -> str:
    fmt = schema.get("format")
    key = name.lower()
    if fmt == "date" or (fmt is None and (key.endswith("date") or key in ("day", "start", "end", "since", "until"))):
        return iso_date(rng)
    if fmt == "date-time" or key.endswith(("_at", "datetime")):
        return f"{iso_date(rng)}T{iso_time(rng)}:00Z"
    if fmt == "time" or key.endswith("time"):
        return iso_time(rng)
    if fmt == "email" or "email" in key:
        return f"{rng.choice(PEOPLE).lower()}@example.com"
    if fmt in ("uri", "url") or key.endswith(("url", "link", "image")):
        return f"https://example.com/{rng.choice(WORDY)}/{rng.randint(100, 999)}"
    if key == "id" or key.endswith(("_id", "id")):
        return f"{rng.choice(WORDY)[:3]}-{rng.randint(1000, 9999)}"
    if "isbn" in key:
        return f"978{rng.randint(1000000000, 9999999999)}"
    named = pick_named(name, rng)
    if named is not None:
        return str(named)
    text = f"{rng.choice(WORDY)} {rng.choice(WORDY)}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, text):
        return str(rng.randint(10000, 99999))
    return text


def humanize(name: str) -> str:
    """``departureCity`` / ``departure_city`` → ``departure city``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    return " ".join(spaced.split()).lower()
