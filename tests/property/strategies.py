"""Shared hypothesis strategies for hostile input, and the table snapshot that keeps examples independent.

What a caller or a producer may send where the contract expects something else: strings (control characters,
unicode look-alikes, `..`, `%2F`, very long ones), decimal texts (`1e400`, `NaN`, fullwidth digits, `1_000`,
` 5 `, 41 digits), JSON numbers (10**40, NaN, infinities), instants and dates far in the past or future, ISO 8601
durations, integers; arbitrary JSON values; near-valid bodies (a valid body with a field or two replaced, dropped
or added); raw texts that are almost JSON (a key written twice, `NaN` tokens, 30,000 levels of `[`, truncation);
raw bodies that are not JSON at all; and how a body travels (content type, base64, bytes that are not UTF-8).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from functools import cache
from typing import Any
from urllib.parse import quote

import boto3
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from moto.dynamodb.models import dynamodb_backends

from prepaid_local.stack import Stack
from support.aws import REGION

Json = Any
JsonPath = tuple[str | int, ...]

# The contract's decimal on the wire ("Numbers"), and what else it says about ids.
CONTRACT_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
EVENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

DROP: Any = object()  # in place of a value: the field is left out

# Placeholders for values only known once the stack is seeded (replaced when a request is sent).
CARD = "@CARD@"
TOKEN = "@TOKEN@"
CURSOR = "@CURSOR@"

# The same examples on every run (no database, no randomness) and no per-example time limit: a loaded machine is
# slow, not wrong (a stuck invocation is caught by `InvocationDeadlines`). The checks left out are about size and
# speed of generation, which hostile input sets out to strain.
SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def has_surrogate(text: str) -> bool:
    """Lone surrogates: a JSON text can carry them (`"\\ud800"`), UTF-8 (a URL, a header) cannot."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# -- strings -----------------------------------------------------------------------------------------------------------

# fmt: off
HOSTILE_STRINGS: tuple[str, ...] = (
    " ", "\t", "\n", "\r\n", "\x00", "\x7f", "\x1b[31m", ".", "..", "../..", "%2F", "%2e%2e%2f", "%00", "%", "%zz",
    "%25", "a/b", "a?b=c", "a#b", "a&b=c", "+", "\\", '"', "'", "<script>alert(1)</script>", "${jndi:ldap://x}",
    "{{7*7}}", "null", "undefined", "true", "[]", "{}", "0", "-1", "NaN", "acme ", " acme", "ACME", "acme\n",
    "acme\x00", "\ufeffacme",
    "\uff41\uff43\uff4d\uff45",  # fullwidth "acme"
    "acmé", "İ", "ß", "\u202eemca", "\u200b", "\u00a0", "😀",
    "\U0001d7d9\U0001d7da",  # double-struck digits
    "\ud800", "\udfff\ud800",
)
# fmt: on


LONG_STRING_LENGTHS = (64, 65, 128, 129, 1025, 10_000)  # around the limits of ids, meters, tokens, URLs


@cache
def hostile_strings(min_size: int = 0, *, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Strings no field expects: control characters, look-alikes, path tricks, very long ones, and (unless a URL or
    a header is to carry them, where UTF-8 cannot) lone surrogates."""
    listed = [s for s in HOSTILE_STRINGS if len(s) >= min_size and (surrogates or not has_surrogate(s))]
    return st.one_of(
        st.sampled_from(listed),
        st.sampled_from(LONG_STRING_LENGTHS).map(lambda n: "a" * n),
        st.text(min_size=min_size, max_size=30),
        st.text(st.characters(codec="ascii"), min_size=min_size, max_size=30),
        st.text(
            st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Nd", "Mn"]), min_size=max(1, min_size), max_size=8
        ),
    )


@cache
def wire_strings(min_size: int = 0) -> st.SearchStrategy[str]:
    """Hostile strings a client can put into a URL or a header (no lone surrogates: UTF-8 cannot carry them)."""
    return hostile_strings(min_size, surrogates=False)


@cache
def header_values() -> st.SearchStrategy[str]:
    """Hostile header values (no line breaks: HTTP cannot carry them in a header)."""
    return wire_strings().map(lambda s: s.replace("\r", " ").replace("\n", " "))


# -- numbers -----------------------------------------------------------------------------------------------------------

# fmt: off
HOSTILE_DECIMAL_TEXTS: tuple[str, ...] = (
    "-1000000", "-1", "-0", "0", "00", "0.0", "-0.000000001", "1e400", "1E+400", "-1e400", "1e-400", "1e30", "1e3",
    "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf",
    "\uff11\uff10",  # fullwidth "10"
    "٣", "१२", "1_000", "1,000", " 5 ", "5 ", "\t5\n", "+5", "1.", ".5", "0x10", "1.5.5", "--1", "", " ",
    "0.0000000001", "0.000000001", "1" * 41, "-" + "9" * 41, "0." + "1" * 41, "1" * 20 + "." + "1" * 21, "9" * 38,
    "9" * 39, "1000000000000", "1000000000000.000000001", "1000000000001", "10000000000000", "999999999999.999999999",
    "12.3456789012", "1.0000000000",
)
# fmt: on


@cache
def hostile_decimal_texts() -> st.SearchStrategy[str]:
    """Texts where a decimal string is expected: exponents, NaN, other digits, `_`, spaces, 41 digits, 10 decimals."""
    return st.one_of(
        st.sampled_from(HOSTILE_DECIMAL_TEXTS),
        st.from_regex(r"-?[0-9]{1,42}(\.[0-9]{1,42})?", fullmatch=True),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.integers(-(10**45), 10**45).map(str),
    )


# fmt: off
HOSTILE_JSON_NUMBERS: tuple[Json, ...] = (
    0, -1, 1, 10**12, 10**12 + 1, 10**13, 10**40, -(10**40), 2**53 + 1, 2**63, -(2**63) - 1, 0.5, 1.5, -0.0, 1e-10,
    1e30, 1e308, float("nan"), float("inf"), float("-inf"), True, False,
)
# fmt: on


@cache
def hostile_json_numbers() -> st.SearchStrategy[Json]:
    """JSON numbers (and booleans) where a decimal string is expected; NaN and infinities as Python writes them."""
    return st.one_of(st.sampled_from(HOSTILE_JSON_NUMBERS), st.integers(), st.floats())


HOSTILE_INTS: tuple[Json, ...] = (-1, 0, 1, 31, 32, 59, 60, 100, 101, 86_400, 86_401, 10**40, -(10**40), 2**63)


@cache
def hostile_ints() -> st.SearchStrategy[Json]:
    """Where an integer is expected: out of range, huge, floats, booleans, strings."""
    return st.one_of(
        st.sampled_from(HOSTILE_INTS),
        st.integers(),
        st.sampled_from((1.0, 1.5, float("nan"), True, False, "1", "50", None, [], {})),
    )


# -- time --------------------------------------------------------------------------------------------------------------

# fmt: off
HOSTILE_INSTANTS: tuple[str, ...] = (
    "9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-00:01", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "2000-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
    "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z",
    "20260101T000000Z", "2026-W01-1T00:00:00Z", "+12026-01-01T00:00:00Z", "-0001-01-01T00:00:00Z",
    "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00.123456789Z",
    "2026-01-01T00:00:00z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth year
    "now", "",
)
# fmt: on

_OFFSETS = st.sampled_from(
    (UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)), timezone(timedelta(hours=5, minutes=30)))
)


@cache
def hostile_instants() -> st.SearchStrategy[str]:
    """Instants far in the past or future, at the edges of what `datetime` holds, malformed, or without a zone."""
    return st.one_of(
        st.sampled_from(HOSTILE_INSTANTS),
        st.datetimes(timezones=st.none() | _OFFSETS).map(lambda d: d.isoformat()),
    )


# fmt: off
HOSTILE_DATES: tuple[str, ...] = (
    "9999-12-31", "0001-01-01", "2026-02-30", "2026-1-1", "20260101", "2026-W01",
    "\uff12\uff10\uff12\uff16-01-01",  # fullwidth year
    "9999-12-31T00:00:00Z", "2026-12-01T00:00:00", "today", "",
)
# fmt: on


@cache
def hostile_dates() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_DATES), st.dates().map(lambda d: d.isoformat()))


# fmt: off
HOSTILE_DURATIONS: tuple[str, ...] = (
    "P99999Y", "P9999Y", "P1Y", "P1M", "P1W", "P1D", "PT1S", "PT0S", "P0D", "-P1D", "P-1D", "P1.5D", "P", "PT",
    "P1DT", "p1d", "P1D ", "P99999999999D", "PT99999999999999H", "P1000000D", "PT1e9S", "P1Y2M3DT4H5M6S",
    "P\uff11D",  # fullwidth digit
    "1 day",
)
# fmt: on


@cache
def hostile_durations() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_DURATIONS), st.from_regex(r"P[0-9]{1,12}D", fullmatch=True))


# -- JSON values -------------------------------------------------------------------------------------------------------

# Field names of the API's bodies and the queue messages: arbitrary objects use them, so they reach the schemas.
# fmt: off
FIELD_NAMES: tuple[str, ...] = (
    "credits", "price", "amount", "currency", "expiresAt", "expiresIn", "effectiveAt", "priority", "source",
    "thresholds", "autoRecharge", "recurring", "threshold", "maxPerDay", "dayOfMonth", "webhookUrl", "mode", "tiers",
    "upTo", "unitPrice", "meters", "overrides", "creditsPerUnit", "events", "eventId", "customerId", "meter",
    "quantity", "timestamp", "dimensions", "ttlSeconds", "dimension", "prices", "pricedBy",
    "targetBalance", "overagePolicy",
)
# fmt: on
DECIMAL_FIELDS = frozenset(
    {"credits", "amount", "threshold", "thresholds", "upTo", "unitPrice", "creditsPerUnit", "quantity", "targetBalance"}
)
INSTANT_FIELDS = frozenset({"expiresAt", "effectiveAt", "timestamp"})
DURATION_FIELDS = frozenset({"expiresIn"})
INTEGER_FIELDS = frozenset({"priority", "maxPerDay", "dayOfMonth", "ttlSeconds", "limit", "horizonDays"})

HUGE_LENGTHS = (70_000, 40_000)  # over the 64 KiB body limit, in ASCII and in two-byte characters


@cache
def json_keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10))


@cache
def json_scalars() -> st.SearchStrategy[Json]:
    return st.one_of(
        st.none(),
        st.booleans(),
        hostile_json_numbers(),
        hostile_strings(),
        hostile_decimal_texts(),
        st.sampled_from(HUGE_LENGTHS).map(lambda n: "x" * n if n > 50_000 else "é" * n),
    )


@cache
def json_values(max_leaves: int = 12) -> st.SearchStrategy[Json]:
    """Arbitrary JSON values: nested objects and arrays of hostile scalars (huge strings, 10**40, NaN, ...)."""
    return st.recursive(
        json_scalars(),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(json_keys(), children, max_size=4)),
        max_leaves=max_leaves,
    )


JSON_VALUES = json_values()


# The sharpest values of each kind: at the edges of what `Decimal`, `datetime`, `timedelta`, DynamoDB's 38 digits
# and the contract's limits hold. Drawn most often, so that a few hundred examples try each field with them.
EDGE_DECIMALS: tuple[Json, ...] = (
    "1e400", "-1e400", "1e-400", "1" * 41, "0." + "1" * 41, "1" * 20 + "." + "1" * 21, "9" * 39, "1e30", "-1000000",
    "NaN", "0.0000000001", "\uff11\uff10", "1_000", " 5 ", "+5", 10**40, -(10**40),
    "25%", "100%", "100.000000001%", "0.0000000001%", "1e3%", "9" * 39 + "%",
)  # fmt: skip
EDGE_INSTANTS: tuple[str, ...] = (
    "9999-12-31T00:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
)  # fmt: skip
EDGE_DURATIONS: tuple[str, ...] = ("P99999Y", "P9999Y", "P999999999D", "PT99999999999999H", "P3000000D", "-P1D")
EDGE_INTS: tuple[Json, ...] = (10**40, -(10**40), 2**63, -1, 0, True, 1.5, "1")


# For a field of no particular kind (an id, a currency, a URL, an object): empty, blank, NUL, too long, a lone
# surrogate, null, a huge number, the wrong container, a boolean.
GENERIC_EDGES: tuple[Json, ...] = ("", " ", "\x00", "a" * 129, "\ud800", None, 10**40, [], {}, True)


def edge_values(field: str) -> tuple[Json, ...]:
    """The edge values to try in a field, every one of them, in every example body (see `hostile_value_for` for
    the values drawn at random)."""
    for fields, edges in (
        (DECIMAL_FIELDS, EDGE_DECIMALS),
        (INSTANT_FIELDS, (*EDGE_INSTANTS, "2026-01-01T00:00:00", "2026-02-30T00:00:00Z")),
        (DURATION_FIELDS, (*EDGE_DURATIONS, "P0D")),
        (INTEGER_FIELDS, EDGE_INTS),
    ):
        if field in fields:
            return (*edges, None)
    return GENERIC_EDGES


def query_edge_values(key: str) -> tuple[str, ...]:
    """The edge values to try in a query parameter, every one of them."""
    if key == "credits":
        return tuple(str(v) for v in EDGE_DECIMALS)
    if key in ("limit", "horizonDays"):
        return QUERY_INTEGERS
    if key in ("from", "to"):
        return (*EDGE_INSTANTS, "9999-12-31", "0001-01-01", "2026-02-30", "2026-01-01T00:00:00")
    if key in ("type", "granularity"):
        return QUERY_WORDS
    return ("", " ", "a" * 1025, "%00", "..", "\uff41\uff43\uff4d\uff45", "\x00")


@cache
def hostile_value_for(field: str) -> st.SearchStrategy[Json]:
    """A hostile value for a field: of the field's kind (decimal, instant, duration, integer) five times in six,
    its edge values half of the time; else any hostile string, number or JSON value."""
    general = st.one_of(hostile_strings(), hostile_json_numbers(), JSON_VALUES)
    kinds: list[tuple[frozenset[str], tuple[Json, ...], st.SearchStrategy[Json], st.SearchStrategy[Json]]] = [
        (
            DECIMAL_FIELDS,
            EDGE_DECIMALS,
            st.sampled_from(HOSTILE_DECIMAL_TEXTS + HOSTILE_JSON_NUMBERS),
            hostile_decimal_texts(),
        ),
        (INSTANT_FIELDS, EDGE_INSTANTS, st.sampled_from(HOSTILE_INSTANTS), hostile_instants()),
        (DURATION_FIELDS, EDGE_DURATIONS, st.sampled_from(HOSTILE_DURATIONS), hostile_durations()),
        (INTEGER_FIELDS, EDGE_INTS, st.sampled_from(HOSTILE_INTS), hostile_ints()),
    ]
    for fields, edges, listed, generated in kinds:
        if field in fields:
            edge = st.sampled_from(edges)
            return st.one_of(edge, edge, edge, listed, generated, general)
    return general


def to_json(value: Json, *, ascii_only: bool = True) -> str:
    """JSON text as Python writes it (NaN and Infinity included); UTF-8 rather than escapes unless asked, or where a
    lone surrogate can only travel escaped."""
    text = json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if ascii_only or has_surrogate(text) else text


# -- near-valid bodies -------------------------------------------------------------------------------------------------


def json_paths(value: Json, prefix: JsonPath = ()) -> Iterator[JsonPath]:
    """Every place in a JSON value (the root first), as the keys and indexes that lead there."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*prefix, index))


def field_of(path: JsonPath) -> str:
    """The name of the field a place belongs to (a list's items belong to the list's field)."""
    return next((p for p in reversed(path) if isinstance(p, str)), "")


def _at(value: Json, path: JsonPath) -> Json:
    for step in path:
        value = value[step]
    return value


def replaced(value: Json, place: JsonPath, new: Json) -> Json:
    """A copy of a JSON value with the value at `place` replaced by `new` (left out, for `DROP`)."""
    value = copy.deepcopy(value)
    parent = _at(value, place[:-1])
    if new is DROP:
        del parent[place[-1]]
    else:
        parent[place[-1]] = new
    return value


def _change(draw: st.DrawFn, body: Json, place: JsonPath) -> None:
    """Change one place of a body: its value replaced by a hostile one (most often), dropped, or a field (one the
    body may have, such as `expiresIn`, or an unknown one) or an item added next to it."""
    parent, last = _at(body, place[:-1]), place[-1]
    change = draw(st.sampled_from(("replace", "replace", "replace", "drop", "add")))
    if change == "replace":
        parent[last] = draw(hostile_value_for(field_of(place)))
    elif change == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        key = draw(json_keys())
        parent[key] = draw(hostile_value_for(key))
    else:
        parent.append(draw(st.one_of(st.just(copy.deepcopy(parent[last])), JSON_VALUES)))


@st.composite
def near_valid(draw: st.DrawFn, valid: Json, place: JsonPath) -> Json:
    """A valid body with the value at `place` changed, and now and then one more place changed too."""
    body = copy.deepcopy(valid)
    _change(draw, body, place)
    places = list(json_paths(body))[1:]
    if places and draw(st.integers(0, 3)) == 0:
        _change(draw, body, draw(st.sampled_from(places)))
    return body


def near_valid_bodies(valid: Sequence[Json]) -> st.SearchStrategy[Json]:
    """Near-valid bodies, each field name as likely as any other to be the one changed (whichever body and place
    it is in), so that a few hundred examples change every field with its edge values."""
    by_field: dict[str, list[st.SearchStrategy[Json]]] = {}
    for body in valid:
        for place in list(json_paths(body))[1:]:
            by_field.setdefault(field_of(place), []).append(near_valid(body, place))
    if not by_field:
        return JSON_VALUES
    return st.one_of([st.one_of(changes) for _, changes in sorted(by_field.items())])


def json_text(value: Json, at: JsonPath | None = None, *, raw: str | None = None, twice: str | None = None) -> str:
    """JSON text of a value, with the value at `at` written as the raw text `raw`, or with the key at `at` written
    a second time with the text `twice` (a duplicated key)."""

    def write(node: Json, here: JsonPath) -> str:
        if here == at and raw is not None:
            return raw
        if isinstance(node, dict):
            parts = []
            for key, child in node.items():
                parts.append(f"{json.dumps(key)}:{write(child, (*here, key))}")
                if twice is not None and (*here, key) == at:
                    parts.append(f"{json.dumps(key)}:{twice}")
            return "{" + ",".join(parts) + "}"
        if isinstance(node, list):
            return "[" + ",".join(write(child, (*here, i)) for i, child in enumerate(node)) + "]"
        return json.dumps(node)

    return write(value, ())


# Texts in the place of a value that a strict JSON reader refuses, or that Python's reads as something odd.
# fmt: off
RAW_TOKENS: tuple[str, ...] = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 5000, "12345678901234567890123456789012345678901",
    "-0", "01", ".5", "+1", "1_000", "0x10", "1.", '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', "'single'",
    "undefined", "[" * 30_000 + "]" * 30_000, '{"a":' * 20_000 + "1" + "}" * 20_000, "[" * 1_000 + "]" * 1_000,
    '"unterminated',
)
# fmt: on


def _nested(depth: int, shape: str) -> str:
    if shape == "open":
        return "[" * depth
    if shape == "arrays":
        return "[" * depth + "]" * depth
    if shape == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"credits":' + "[" * depth + "]" * depth + "}"


NESTED_SHAPES = ("open", "arrays", "objects", "field")
DEEPLY_NESTED = tuple(_nested(30_000, shape) for shape in NESTED_SHAPES)


@cache
def deeply_nested() -> st.SearchStrategy[str]:
    """JSON nested deeper than a recursive reader goes: 30,000 levels of `[` (closed or not), of objects, in a field."""
    return st.builds(_nested, st.sampled_from((30_000, 1_000, 100)), st.sampled_from(NESTED_SHAPES))


@st.composite
def raw_variants(draw: st.DrawFn, valid: Json) -> str:
    """Texts close to a valid body that a strict JSON reader refuses or reads otherwise: a key written twice, a value
    that is no JSON (`NaN`, `1e400`, deep nesting, a lone surrogate), truncation, trailing text, a BOM, quotes."""
    text = json.dumps(valid)
    keyed = [p for p in json_paths(valid) if p and isinstance(p[-1], str)]
    places = list(json_paths(valid))[1:]
    kind = draw(st.sampled_from(("duplicate", "token", "deep", "truncated", "trailing", "bom", "quotes")))
    if kind == "duplicate" and keyed:
        place = draw(st.sampled_from(keyed))
        second = draw(st.one_of(st.just(_at(valid, place)), hostile_value_for(field_of(place))))
        return json_text(valid, place, twice=json.dumps(second))
    if kind == "token" and places:
        return json_text(valid, draw(st.sampled_from(places)), raw=draw(st.sampled_from(RAW_TOKENS)))
    if kind == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "trailing":
        return text + draw(st.sampled_from(("x", " ", "\x00", text, ",", "}", "]", "\n{}")))
    if kind == "bom":
        return "\ufeff" + text
    if kind == "quotes":
        return text.replace('"', "'")
    return draw(deeply_nested())


# fmt: off
# An unterminated string of escapes: a regular expression with nested repetition takes exponential time on it.
UNTERMINATED_ESCAPES = '{"credits": "' + "ab\\n" * 40

RAW_BODIES: tuple[str, ...] = (
    "", " ", "\n", "null", "true", "0", "-1", '"text"', "[]", "[{}]", "{}", '{"":1}', "{", "}", "credits=1",
    "credits=1&price=2", "<credits>1</credits>", "\x00", "\ufeff", "😀", "NaN", "Infinity", "1e400", '"\\ud800"',
    "x" * 70_000, UNTERMINATED_ESCAPES,
)
# fmt: on


@cache
def raw_bodies() -> st.SearchStrategy[str]:
    """Bodies that are no JSON object: other JSON values, forms, XML, nothing, deep nesting, random text."""
    return st.one_of(st.sampled_from(RAW_BODIES), st.text(max_size=40), deeply_nested(), JSON_VALUES.map(to_json))


# -- how a body travels ------------------------------------------------------------------------------------------------

JSON_TYPE = "application/json"
# fmt: off
OTHER_CONTENT_TYPES: tuple[str | None, ...] = (
    None, "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx",
    "application/merge-patch+json", "text/json", "*/*", " application/json",
)
# fmt: on


@dataclass(frozen=True)
class Body:
    """A request body as API Gateway hands it over: text (None: no body), its content type (None: no header, under
    the header name given), and whether it came base64-encoded (binary)."""

    text: str | None
    content_type: str | None = JSON_TYPE
    header: str = "Content-Type"
    base64: bool = False

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis reports an example
        printer.text(repr(self))

    def __repr__(self) -> str:
        kind = " (base64)" if self.base64 else ""
        return f"Body({shorten(self.text, 600)}{kind}, {self.header}: {self.content_type!r})"


def shorten(text: str | None, keep: int = 160) -> str:
    """A text as Python writes it, long ones cut in the middle (with their length), for example reports."""
    if text is None or len(text) <= keep:
        return repr(text)
    return f"{text[: keep // 2]!r} … {text[-keep // 4 :]!r} ({len(text)} chars)"


@cache
def content_types() -> st.SearchStrategy[str | None]:
    """`application/json` three times in four; else another, a variant, or none."""
    return st.one_of(st.just(JSON_TYPE), st.just(JSON_TYPE), st.just(JSON_TYPE), st.sampled_from(OTHER_CONTENT_TYPES))


def _binary(data: bytes, as_base64: bool) -> Body:
    if as_base64:
        return Body(base64.b64encode(data).decode(), base64=True)
    return Body(data.decode("utf-8", "replace"))


def _base64_json(value: Json) -> Body:
    """A valid body delivered base64-encoded (as API Gateway passes a body it takes for binary)."""
    return Body(base64.b64encode(json.dumps(value).encode()).decode(), base64=True)


def bodies(valid: Sequence[Json]) -> st.SearchStrategy[Body]:
    """Hostile bodies for a route, sent as `application/json` (see `with_content_type` for the others):
    near-valid ones (four in seven where the route has valid bodies) and raw variants of them first, then arbitrary
    JSON, raw texts that are no JSON object, bytes that are not UTF-8 (base64 or as replaced text), and none."""
    others = [
        st.builds(Body, JSON_VALUES.map(to_json)),
        st.builds(Body, raw_bodies()),
        st.builds(_binary, st.binary(max_size=30).map(lambda b: b"\xff\xfe" + b), st.booleans()),
        st.just(Body(None, None)),
    ]
    if not valid:
        return st.one_of(others[-1], *others[:-1])
    mutated = st.builds(Body, st.builds(lambda v, a: to_json(v, ascii_only=a), near_valid_bodies(valid), st.booleans()))
    variants = st.builds(Body, st.one_of([raw_variants(v) for v in valid]))
    in_base64 = st.sampled_from(list(valid)).map(_base64_json)
    return st.one_of(*[mutated] * 8, variants, in_base64, *others)


CONTENT_TYPE_HEADERS = ("Content-Type", "content-type", "CONTENT-TYPE")


@st.composite
def with_content_type(draw: st.DrawFn, body: Body) -> Body:
    """The body under another content type (or none), and the header's name in another case."""
    return Body(body.text, draw(content_types()), draw(st.sampled_from(CONTENT_TYPE_HEADERS)), body.base64)


# -- URLs and headers --------------------------------------------------------------------------------------------------


def encode(text: str, *, fully: bool) -> str:
    """A path segment or query part as a client writes it: percent-encoded (`fully`), or as it is with only the
    characters that would change the URL's structure (`/`, `?`, `#`) encoded."""
    if fully:
        return quote(text.encode("utf-8", "surrogatepass"), safe="")
    return text.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")


def path_values(known: Sequence[str]) -> st.SearchStrategy[str]:
    """A path parameter: a known id half of the time, else a hostile string (never empty: that is another route)."""
    return st.one_of(st.sampled_from(list(known)), wire_strings(min_size=1))


QUERY_INTEGERS: tuple[str, ...] = (
    "0",
    "-1",
    "1",
    "500",
    "501",
    "1e3",
    "1.0",
    "\uff11\uff10",
    "1_000",
    " 5 ",
    "NaN",
    "9" * 40,
)
QUERY_WORDS: tuple[str, ...] = ("hour", "day", "week", "HOUR", "purchase", "usage", "USAGE", "overage_payoff", "expiry")


@cache
def query_value_for(key: str) -> st.SearchStrategy[str]:
    """A hostile value for a query parameter: of its kind (a decimal, an integer, an instant or date, a word) three
    times in four; else any hostile query value."""
    integers = st.one_of(st.sampled_from(QUERY_INTEGERS), st.integers().map(str))
    instants = st.one_of(st.sampled_from(HOSTILE_INSTANTS + HOSTILE_DATES), hostile_instants(), hostile_dates())
    specific = {
        "credits": st.one_of(st.sampled_from(HOSTILE_DECIMAL_TEXTS), hostile_decimal_texts()),
        "limit": integers,
        "horizonDays": integers,
        "from": instants,
        "to": instants,
        "type": st.sampled_from(QUERY_WORDS),
        "granularity": st.sampled_from(QUERY_WORDS),
    }.get(key)
    if specific is None:
        return query_values()
    return st.one_of(specific, specific, specific, query_values())


@cache
def query_values() -> st.SearchStrategy[str]:
    """A hostile query value: numbers, instants, dates, durations, strings, or words of the API's enumerations."""
    return st.one_of(
        hostile_decimal_texts(),
        hostile_instants(),
        hostile_dates(),
        hostile_durations(),
        wire_strings(),
        st.sampled_from(QUERY_WORDS),
    )


@st.composite
def query_pairs(
    draw: st.DrawFn, known: Mapping[str, Sequence[str]], required: frozenset[str] = frozenset(), max_changes: int = 3
) -> tuple[tuple[str, str], ...]:
    """Query parameters: the route's known ones at valid values (the required ones, and each other one or not),
    then up to `max_changes` changes: a value made hostile, a key repeated, a parameter dropped, or one added."""
    pairs = [
        (key, draw(st.sampled_from(list(values))))
        for key, values in known.items()
        if key in required or draw(st.booleans())
    ]
    keys = st.one_of(st.sampled_from(list(known) or ["x"]), wire_strings())
    for _ in range(draw(st.integers(0 if known else 1, max_changes)) if max_changes else 0):
        change = draw(st.sampled_from(("hostile", "hostile", "repeat", "drop", "add")))
        if change == "add" or not pairs:
            key = draw(keys)
            pairs.append((key, draw(query_value_for(key))))
            continue
        index = draw(st.integers(0, len(pairs) - 1))
        key = pairs[index][0]
        if change == "hostile":
            pairs[index] = (key, draw(query_value_for(key)))
        elif change == "repeat":
            pairs.insert(index + draw(st.integers(0, 1)), (key, draw(query_value_for(key))))
        else:
            del pairs[index]
    return tuple(pairs)


# fmt: off
IDEMPOTENCY_KEYS: tuple[str, ...] = (
    "order-1", "a" * 255, "a" * 256, "", " ", "key with spaces", "ключ", "\t", "\x7f", "%00", "../x",
)
# fmt: on


@cache
def idempotency_keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(IDEMPOTENCY_KEYS), header_values())


# fmt: off
AUTHORIZATIONS: tuple[str, ...] = (
    f"Bearer {TOKEN}", f"Bearer {TOKEN}x", f"Bearer x{TOKEN}", f"bearer {TOKEN}", f"Bearer   {TOKEN}  ",
    f"Bearer {TOKEN}{TOKEN}", TOKEN, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer ...",
    "Bearer ===", "Bearer " + "a" * 2000,
)
# fmt: on


@cache
def authorizations() -> st.SearchStrategy[str]:
    """An `Authorization` header: the seeded dashboard token (also altered), or junk."""
    return st.one_of(st.sampled_from(AUTHORIZATIONS), header_values().map(lambda s: "Bearer " + s))


# -- bounding each invocation in time ------------------------------------------------------------------------------

# A generous bound, on purpose not the functions' own timeouts (15 s and up): in-process, with no network, an
# invocation takes milliseconds, a few seconds on a loaded two-core machine; one that runs for a minute does not
# end (exponential backtracking doubles with each character), and on AWS it would be a 504 or a failed delivery.
DEADLINE_SECONDS = 60.0


class TimedOut(Exception):
    """Raised into a handler that ran past its function's time, as Lambda stops it (a 5xx for API Gateway, a
    failed delivery for SQS)."""


class InvocationDeadlines:
    """While active, every invocation of a template function is bounded by `DEADLINE_SECONDS`: past it, `TimedOut`
    is raised into the running handler (a SIGALRM timer, armed by the stack's observer hook before each invocation;
    Python's regular expressions and loops are interrupted by it). `late` lists the functions that ran out of time."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.late: list[str] = []
        self._running: str | None = None

    def _seconds(self, function: str) -> float:
        return DEADLINE_SECONDS

    def _arm(self, function: str, event: Any) -> None:
        self._running = function
        signal.setitimer(signal.ITIMER_REAL, self._seconds(function))

    def _alarm(self, signum: int, frame: Any) -> None:
        function = self._running or "?"
        self.late.append(function)
        timeout = self.stack.functions[function].timeout if function in self.stack.functions else "?"
        raise TimedOut(f"{function} still running after {self._seconds(function)} s (its timeout: {timeout} s)")

    def __enter__(self) -> InvocationDeadlines:
        self.late.clear()
        self._previous = signal.signal(signal.SIGALRM, self._alarm)
        self.stack.observers.append(self._arm)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.stack.observers.remove(self._arm)
        signal.signal(signal.SIGALRM, self._previous)


# -- keeping examples independent --------------------------------------------------------------------------------------


class TableState:
    """The wallet table as items (DynamoDB's attribute-value form) by key, and a restore to a snapshot.

    Examples share one stack; each starts from the seeded table again, so that a failure found by one example
    reproduces when hypothesis replays and shrinks it. The items are read from moto's backend in this process (a
    scan through boto3 takes ~35 ms here, this well under 1 ms: it is read twice per example); the restore writes
    through the API."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = boto3.client("dynamodb", region_name=REGION)
        self.name = stack.name("WalletTable")
        self._backend = dynamodb_backends[stack.resolver.account][stack.resolver.region]

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        table = self._backend.get_table(self.name)
        return {(i.attrs["PK"].value, i.attrs["SK"].value): i.to_json()["Attributes"] for i in table.all_items()}

    def restore(self, wanted: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        """Put the table back as `wanted`; where the catalog changed, start the handlers cold too, as they cache
        the rate card (ingest and `POST /usage`, for 30 seconds)."""
        now = self.items()
        changed = changed_keys(wanted, now)
        for pk, sk in changed:
            if (pk, sk) in wanted:
                self.client.put_item(TableName=self.name, Item=wanted[pk, sk])
            else:
                self.client.delete_item(TableName=self.name, Key={"PK": {"S": pk}, "SK": {"S": sk}})
        if any(pk == "CATALOG" for pk, _ in changed):
            self.stack.cold_start()


def changed_keys(before: Mapping[tuple[str, str], Any], after: Mapping[tuple[str, str], Any]) -> list[tuple[str, str]]:
    """Keys of the items added, removed or changed."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
