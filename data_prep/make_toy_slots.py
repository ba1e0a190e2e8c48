"""Generate the small joint slot-filling / intent dataset that ships with seqkit.

The quick start trains on this data (``recipes/slot_filling/toy/data/``), so it must be
small, freely redistributable and still non-trivial.  It is produced from hand-written
templates and value lists (invented names, common English words and common place names;
no corpus text), in the SlotGated-SLU / ATIS layout::

    train.seq.in   find me a flight from new york to denver next tuesday
    train.seq.out  O O O O O B-from_city I-from_city O B-to_city B-date I-date
    train.label    find_flight

What makes it non-trivial:

* about 20% of the values of every value list with at least 5 entries (cities, artists,
  songs, hotels, airlines, dates, times, ...) are *held out*: they occur only in dev, so
  dev has words and slot values never seen in training;
* the same value fills different slots depending on context: a city is ``from_city``,
  ``to_city`` or ``city``; a number is ``party_size``, ``num_nights`` or an alarm
  ``time``; "from" introduces a city, a date or an artist;
* paraphrases, optional parts and fillers ("please", "can you", "thanks").

The output is deterministic (``random.Random(seed)``, default seed 13): re-running with
the same arguments reproduces every file byte for byte::

    python data_prep/make_toy_slots.py --out recipes/slot_filling/toy/data
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEED = 13
DEFAULT_TRAIN = 2000
DEFAULT_DEV = 300
DEFAULT_HOLDOUT = 0.2
DEV_HELD_PROB = 0.4  # in dev, chance that a slot is filled with a held-out value
DEFAULT_OUT = "recipes/slot_filling/toy/data"

# --------------------------------------------------------------------------- values
# All lists are hand-written for seqkit.  Artist, song, hotel and airline names are
# invented; cities are common place names; the rest are ordinary English words.

CITIES = [
    "new york", "san francisco", "los angeles", "las vegas", "salt lake city",
    "new orleans", "kansas city", "san diego", "mexico city", "hong kong",
    "buenos aires", "cape town", "rio de janeiro", "tel aviv", "st louis",
    "boston", "denver", "chicago", "seattle", "miami", "atlanta", "dallas", "phoenix",
    "portland", "austin", "london", "paris", "berlin", "madrid", "rome", "tokyo",
    "dublin", "lisbon", "toronto", "vancouver", "sydney", "oslo", "prague", "vienna",
    "amsterdam", "nairobi", "montreal", "houston", "detroit", "nashville",
]

AIRLINES = [
    "skyline air", "blue heron airways", "northstar airlines", "coastal jet",
    "aurora air", "pinewood airlines", "atlas wings", "meridian air", "sunfield airways",
    "redkite airlines", "silverline", "harbor air", "compass airways", "tern air",
]

SEAT_CLASSES = ["economy", "business class", "first class", "premium economy"]

HOTELS = [
    "grand harbor hotel", "maple inn", "hotel lumen", "the copper key",
    "riverside lodge", "blue door suites", "cedar court hotel", "old mill inn",
    "hotel solara", "the quiet fox", "parkview suites", "lantern house",
    "seabreeze resort", "willow grove inn", "hotel marigold", "stonebridge lodge",
]

PRICE_RANGES = ["cheap", "affordable", "moderately priced", "fancy", "upscale", "budget"]

CUISINES = [
    "italian", "thai", "mexican", "indian", "japanese", "korean", "french", "greek",
    "vietnamese", "ethiopian", "chinese", "spanish", "lebanese", "turkish", "vegan",
    "middle eastern", "west african", "south indian", "caribbean", "peruvian", "brazilian",
]

ARTISTS = [
    "the velvet owls", "mara quinn", "dj solstice", "lena ortiz", "the paper kites club",
    "jonah reed", "silver fern", "the night tram", "ada mwangi", "kofi and the lanterns",
    "rosa vell", "the tin harbour", "milo grant", "echo valley", "sam okafor",
    "the bright hollows", "nina sol", "static garden", "the june bugs", "theo laine",
    "luca ferro", "the amber lights",
]

SONGS = [
    "paper lanterns", "river of glass", "midnight orchard", "slow comet", "blue static",
    "northern hymn", "coffee at dawn", "the long way round", "glass houses",
    "honey and smoke", "neon rain", "salt and pepper skies", "after the storm",
    "little wooden boat", "summer in reverse", "copper moon", "falling upward",
    "open windows", "the last ferry", "velvet morning", "quiet engines",
]

GENRES = [
    "jazz", "rock", "hip hop", "classical", "lo fi", "country", "blues", "reggae",
    "heavy metal", "indie pop", "bossa nova", "folk", "soul", "techno", "punk rock",
    "drum and bass",
]

WEATHER_VERBS = ["rain", "snow", "hail", "drizzle", "storm"]
WEATHER_ADJS = ["sunny", "windy", "cold", "hot", "foggy", "humid", "cloudy", "warm", "freezing"]
TEMPERATURE_WORDS = ["hot", "cold", "warm", "chilly"]

NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
HOUR_WORDS = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
]
ORDINALS = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "twelfth", "fifteenth", "twentieth", "twenty first", "thirtieth",
]


def _numbers() -> list[str]:
    return NUMBER_WORDS + [str(n) for n in range(2, 13)]


def _bare_dates() -> list[str]:
    """Dates that read well without a preposition ("... tomorrow", "... next friday")."""
    out = ["today", "tomorrow", "tonight", "the day after tomorrow", "this weekend",
           "next weekend", "next week", "next month"]
    out += [f"next {d}" for d in WEEKDAYS] + [f"this {d}" for d in WEEKDAYS]
    return out


def _on_dates() -> list[str]:
    """Dates that follow "on" ("on friday", "on march third", "on the fifth")."""
    out = list(WEEKDAYS)
    out += [f"{m} {o}" for m in MONTHS[::2] for o in ORDINALS[::3]]
    out += [f"{m} {o}" for m in MONTHS[1::2] for o in ORDINALS[1::3]]
    out += [f"the {o}" for o in ORDINALS[::2]]
    return out


def _clock_times() -> list[str]:
    """Clock times that follow "at" / "for"; bare hours double as numbers."""
    out = []
    for i, h in enumerate(HOUR_WORDS, 1):
        out += [h, f"{h} thirty", f"{i} am", f"{i} pm", f"half past {h}"]
        if i % 2:
            out += [f"{h} fifteen", f"{i}:45 pm", f"quarter to {h}"]
        else:
            out += [f"{h} forty five", f"{i}:30 am", f"{h} o clock"]
    out += ["noon", "midnight", "6:15", "7:05 am", "5:50 pm"]
    return out


PERIODS = ["morning", "afternoon", "evening", "early morning", "late afternoon",
           "early evening", "late evening"]

# pool name -> values
POOLS: dict[str, list[str]] = {
    "city": CITIES,
    "airline": AIRLINES,
    "seat_class": SEAT_CLASSES,
    "hotel": HOTELS,
    "price": PRICE_RANGES,
    "cuisine": CUISINES,
    "artist": ARTISTS,
    "song": SONGS,
    "genre": GENRES,
    "wverb": WEATHER_VERBS,
    "wadj": WEATHER_ADJS,
    "temp": TEMPERATURE_WORDS,
    "number": _numbers(),
    "date": _bare_dates(),
    "day": _on_dates(),
    "clock": _clock_times(),
    "hour": HOUR_WORDS + [str(h) for h in range(1, 13)],
    "period": PERIODS,
}

# slot name -> default pool (a template may name another pool: {date=day})
SLOT_POOL = {
    "from_city": "city",
    "to_city": "city",
    "city": "city",
    "date": "date",
    "time": "clock",
    "airline": "airline",
    "seat_class": "seat_class",
    "hotel_name": "hotel",
    "num_nights": "number",
    "party_size": "number",
    "price_range": "price",
    "cuisine": "cuisine",
    "artist": "artist",
    "song": "song",
    "genre": "genre",
    "condition": "wadj",
}

# --------------------------------------------------------------------------- templates
# Mini-language: words; {slot} or {slot=pool}; (a|b|c) alternatives; [x] optional.
# $REQ and $THX are optional politeness fillers.

REQ = "[(please|can you|could you|could you please|would you)]"
THX = "[(please|thanks|thank you)]"

TEMPLATES: dict[str, list[str]] = {
    "find_flight": [
        "$REQ (find|show|get) me (a flight|flights) from {from_city} to {to_city} [on {date=day}] $THX",
        "$REQ (book|find) a flight to {to_city} from {from_city} [{date}]",
        "i (want|need|would like) to fly from {from_city} to {to_city} [(on {date=day}|{date})]",
        "i (want|need) to (go|get) to {to_city} [from {from_city}] [{date}]",
        "(what|which) flights (go|fly) from {from_city} to {to_city} [on {date=day}]",
        "{from_city} to {to_city} [flights] [{date}]",
        "are there (flights|any flights) (to|into) {to_city} from {from_city} [(at|after|before|around) {time}]",
        "$REQ find (a|an) {airline} flight (to|into) {to_city} [from {from_city}]",
        "i need {seat_class} (seats|tickets) (to|for) {to_city} [on {date=day}] $THX",
        "show me {airline} flights (leaving|departing) {from_city} [(after|before) {time}]",
        "fly me to {to_city} [{date}] [in {seat_class}]",
        "(cheapest|earliest|latest) flight from {from_city} to {to_city} [{date}]",
        "(flying out of|departing from|leaving) {from_city} (to|for) {to_city} [on {date=day}] [with {airline}]",
        "flights to {to_city} (in the|this) {time=period} [from {from_city}]",
        "$REQ get me to {to_city} by {time} [{date}]",
    ],
    "book_hotel": [
        "$REQ book (a room|a hotel|me a room) in {city} [for {num_nights} nights] [(starting|from) {date}] $THX",
        "i need a hotel in {city} for {num_nights} nights",
        "reserve {num_nights} nights at {hotel_name} [in {city}]",
        "(is there|are there) (rooms|a room) (available|free) at {hotel_name} [on {date=day}]",
        "book [a room at] {hotel_name} for {party_size} (people|guests) [for {num_nights} nights]",
        "$REQ find a {price_range} hotel (in|near) {city} [for {party_size} (people|guests)]",
        "i want to stay in {city} for {num_nights} nights [with {party_size} (people|guests)]",
        "(a room|a hotel room) for {party_size} in {city} [{date}]",
        "{num_nights} nights in {city} [(starting|from) {date=day}] $THX",
        "book [me] {num_nights} nights in {city} [for {party_size} (people|guests)]",
        "(where can i|can i) stay in {city} [{date}] for {party_size}",
        "(get|find) me a room at {hotel_name} [from {date}] [for {num_nights} nights]",
    ],
    "get_weather": [
        "what is the weather [like] in {city} [{date}]",
        "will it {condition=wverb} in {city} [{date}]",
        "is it going to {condition=wverb} [in {city}] [{date}]",
        "how {condition=temp} will it be in {city} [{date}]",
        "(weather|forecast|the forecast) (for|in) {city} [{date}]",
        "do i need (an umbrella|a jacket|sunscreen) in {city} [{date}]",
        "(is|will) it (be|going to be) {condition} in {city} [{date}]",
        "what is the forecast [for] {date} in {city}",
        "$REQ tell me the weather [for] {date} $THX",
        "will it be {condition} [on {date=day}] in {city}",
        "(weather|forecast) [in {city}] on {date=day}",
    ],
    "play_music": [
        "$REQ play {song} by {artist} $THX",
        "$REQ play (something|some music|a song) by {artist}",
        "play [some] {genre} [music]",
        "put on {song} [by {artist}]",
        "i want to (hear|listen to) {song} [by {artist}]",
        "play {artist}",
        "play the song {song}",
        "shuffle [songs by] {artist}",
        "play something from {artist}",
        "(play|put on) some {genre} (music|songs) for the {time=period}",
        "i (want|would like) to listen to [some] {genre}",
        "$REQ play {song}",
    ],
    "set_alarm": [
        "$REQ set an alarm (for|at) {time} [{date}] $THX",
        "wake me up at {time} [{date}]",
        "set [(an|my)] alarm for {date} at {time}",
        "i need to (get up|wake up) at {time} [{date}]",
        "alarm (at|for) {time} [on {date=day}]",
        "$REQ wake me [up] (at|around) {time} [on {date=day}]",
        "set an alarm for {time=hour} in the {time=period}",
        "make sure i am up by {time} [{date}]",
    ],
    "find_restaurant": [
        "$REQ find [me] a good {cuisine} restaurant [in {city}] [for {party_size} people]",
        "(book|reserve) a table for {party_size} [at {time}] [{date}] $THX",
        "table for {party_size} at a {cuisine} (restaurant|place) [in {city}] [{date}]",
        "where can i (get|eat) {cuisine} food [in {city}]",
        "i am looking for a {price_range} {cuisine} restaurant [in {city}]",
        "any {cuisine} (places|restaurants) open (at|around) {time} [in {city}]",
        "{cuisine} food (near|in) {city} for {party_size}",
        "reserve a table at a {cuisine} place for {party_size} [people] [{date}] [at {time}]",
        "$REQ find a {price_range} place to eat in {city} [{date}]",
        "dinner for {party_size} [in {city}] on {date=day} [at {time}]",
    ],
}

INTENT_WEIGHTS = {
    "find_flight": 24,
    "book_hotel": 17,
    "get_weather": 15,
    "play_music": 17,
    "set_alarm": 12,
    "find_restaurant": 15,
}

# --------------------------------------------------------------------------- parsing


def _parse(text: str):
    """Parse the template mini-language into a tree of nodes (see TEMPLATES)."""
    text = text.replace("$REQ", REQ).replace("$THX", THX)
    pos = 0

    def seq(stops: str):
        nonlocal pos
        nodes = []
        word = ""

        def flush():
            nonlocal word
            if word:
                nodes.append(("w", word))
                word = ""

        while pos < len(text):
            c = text[pos]
            if c in stops:
                break
            pos += 1
            if c == " ":
                flush()
            elif c == "{":
                flush()
                end = text.index("}", pos)
                name, _, pool = text[pos:end].partition("=")
                if name not in SLOT_POOL:
                    raise ValueError(f"unknown slot {name!r} in template {text!r}")
                pool = pool or SLOT_POOL[name]
                if pool not in POOLS:
                    raise ValueError(f"unknown pool {pool!r} in template {text!r}")
                nodes.append(("slot", name, pool))
                pos = end + 1
            elif c == "(":
                flush()
                alts = [seq("|)")]
                while text[pos] == "|":
                    pos += 1
                    alts.append(seq("|)"))
                pos += 1  # ")"
                nodes.append(("alt", alts))
            elif c == "[":
                flush()
                inner = seq("]")
                pos += 1  # "]"
                nodes.append(("opt", inner))
            elif c in "|)]":
                raise ValueError(f"unbalanced {c!r} in template {text!r}")
            else:
                word += c
        flush()
        return nodes

    tree = seq("")
    if pos != len(text):
        raise ValueError(f"unbalanced template {text!r}")
    return tree


@dataclass
class Example:
    tokens: list[str]
    tags: list[str]
    intent: str
    held_values: int = 0  # how many slots were filled with a held-out value


class Generator:
    """Samples examples; ``held`` values are used only when ``use_held`` is true (dev)."""

    def __init__(self, rng: random.Random, holdout: float):
        self.rng = rng
        self.templates = {i: [_parse(t) for t in ts] for i, ts in TEMPLATES.items()}
        self.seen: dict[str, list[str]] = {}
        self.held: dict[str, list[str]] = {}
        for name, values in POOLS.items():
            n_held = round(holdout * len(values)) if len(values) >= 5 else 0
            held = set(rng.sample(values, n_held))
            self.seen[name] = [v for v in values if v not in held]
            self.held[name] = [v for v in values if v in held]

    def _value(self, pool: str, use_held: bool, used: set[str]) -> tuple[str, bool]:
        """A value from ``pool`` not yet ``used`` in this sentence, and whether it is held out."""
        rng = self.rng
        for _ in range(20):
            held = bool(use_held and self.held[pool] and rng.random() < DEV_HELD_PROB)
            value = rng.choice(self.held[pool] if held else self.seen[pool])
            if value not in used:
                break
        used.add(value)
        return value, held

    def _expand(self, nodes, use_held: bool, used: set[str], out: list[tuple[str, str]]) -> int:
        """Append (token, tag) pairs for ``nodes`` to ``out``; return the held-out slot count."""
        n_held = 0
        for node in nodes:
            kind = node[0]
            if kind == "w":
                out.append((node[1], "O"))
            elif kind == "slot":
                value, held = self._value(node[2], use_held, used)
                n_held += held
                for i, tok in enumerate(value.split()):
                    out.append((tok, ("B-" if i == 0 else "I-") + node[1]))
            elif kind == "alt":
                n_held += self._expand(self.rng.choice(node[1]), use_held, used, out)
            elif kind == "opt":
                if self.rng.random() < 0.5:
                    n_held += self._expand(node[1], use_held, used, out)
        return n_held

    def sample(self, use_held: bool) -> Example:
        intents = list(INTENT_WEIGHTS)
        intent = self.rng.choices(intents, weights=[INTENT_WEIGHTS[i] for i in intents])[0]
        template = self.rng.choice(self.templates[intent])
        pairs: list[tuple[str, str]] = []
        n_held = self._expand(template, use_held, set(), pairs)
        return Example([t for t, _ in pairs], [g for _, g in pairs], intent, n_held)


def generate(
    seed: int = DEFAULT_SEED,
    n_train: int = DEFAULT_TRAIN,
    n_dev: int = DEFAULT_DEV,
    holdout: float = DEFAULT_HOLDOUT,
) -> tuple[dict[str, list[Example]], Generator]:
    """Return ``({"train": [...], "dev": [...]}, generator)``.

    Sentences are unique within each split and no dev sentence occurs in train.
    """
    gen = Generator(random.Random(seed), holdout)
    splits: dict[str, list[Example]] = {}
    taken: set[str] = set()
    for name, n, use_held in (("train", n_train, False), ("dev", n_dev, True)):
        out: list[Example] = []
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 1000:
                raise RuntimeError(f"could not generate {n} distinct {name} sentences")
            ex = gen.sample(use_held)
            key = " ".join(ex.tokens)
            if key in taken:
                continue
            taken.add(key)
            out.append(ex)
        splits[name] = out
    return splits, gen


# --------------------------------------------------------------------------- writing

LICENSE_TEXT = """\
The files in this directory (train/dev .seq.in, .seq.out, .label) were generated by
data_prep/make_toy_slots.py from templates and value lists written for seqkit.  Artist,
song, hotel and airline names are invented; cities are common place names; no text was
copied from any corpus.

They are released with seqkit under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0).  In addition, to the extent possible
under law, the seqkit authors waive all copyright and related rights in these generated
files under CC0 1.0 Universal (https://creativecommons.org/publicdomain/zero/1.0/).
You may use them under either.
"""


def _command(seed: int, n_train: int, n_dev: int, holdout: float) -> str:
    """The regenerate command for the README (always with the canonical --out)."""
    cmd = f"python data_prep/make_toy_slots.py --out {DEFAULT_OUT}"
    if seed != DEFAULT_SEED:
        cmd += f" --seed {seed}"
    if n_train != DEFAULT_TRAIN:
        cmd += f" --train {n_train}"
    if n_dev != DEFAULT_DEV:
        cmd += f" --dev {n_dev}"
    if holdout != DEFAULT_HOLDOUT:
        cmd += f" --holdout {holdout}"
    return cmd


def readme_text(
    splits: dict[str, list[Example]], gen: Generator, command: str, seed: int
) -> str:
    train, dev = splits["train"], splits["dev"]
    train_vocab = {w for ex in train for w in ex.tokens}
    dev_oov = sorted({w for ex in dev for w in ex.tokens if w not in train_vocab})
    slot_types = sorted({t[2:] for sp in splits.values() for ex in sp for t in ex.tags if t != "O"})
    n_held = sum(len(v) for v in gen.held.values())
    n_all = n_held + sum(len(v) for v in gen.seen.values())

    n_dev_held = sum(1 for ex in dev if ex.held_values)
    lines = [
        "# Toy slot-filling / intent dataset (generated)",
        "",
        "A small joint slot-filling + intent-detection dataset in the ATIS / SlotGated-SLU",
        "layout, generated for the seqkit quick start.  Licence: see `LICENSE` (Apache-2.0,",
        "or CC0 1.0).",
        "",
        f"Regenerate (seed {seed}; the output is byte-identical on every run):",
        "",
        "```",
        command,
        "```",
        "",
        "## Format",
        "",
        "`<split>.seq.in` (lowercased tokens), `<split>.seq.out` (one BIO tag per token) and",
        "`<split>.label` (one intent), line *i* of the three files being the same example;",
        "UTF-8, LF.",
        "",
        "## How it is generated",
        "",
        "Hand-written templates (several paraphrases per intent, optional parts, fillers such",
        "as \"please\" / \"can you\") are filled from hand-written value lists.  Multi-word values",
        "(\"new york\", \"next tuesday\", \"the velvet owls\") are tagged `B-x I-x ...`.  About 20%",
        "of the values of every list with at least 5 entries are held out of train and used",
        f"only in dev ({n_held} of {n_all} values); dev fills a slot with a held-out value with",
        f"probability {DEV_HELD_PROB}.  The same value can fill several slots (a city is",
        "`from_city`, `to_city` or `city`; a number is `party_size`, `num_nights` or a `time`).",
        "Sentences are unique within a split and no dev sentence occurs in train.",
        "",
        "## Counts",
        "",
        "| split | sentences | tokens | intents | slot types |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, sp in splits.items():
        types = {t[2:] for ex in sp for t in ex.tags if t != "O"}
        lines.append(
            f"| {name} | {len(sp)} | {sum(len(ex.tokens) for ex in sp)} | "
            f"{len({ex.intent for ex in sp})} | {len(types)} |"
        )
    lines += [
        "",
        f"Dev: {n_dev_held} of {len(dev)} sentences contain a held-out slot value; "
        f"{len(dev_oov)} dev word types never occur in train.",
        "",
        "| intent | train | dev |",
        "| --- | --- | --- |",
    ]
    for intent in INTENT_WEIGHTS:
        n_tr = sum(1 for ex in train if ex.intent == intent)
        n_dv = sum(1 for ex in dev if ex.intent == intent)
        lines.append(f"| {intent} | {n_tr} | {n_dv} |")
    lines += [
        "",
        f"Slot types ({len(slot_types)}): " + ", ".join(f"`{s}`" for s in slot_types) + ".",
        "",
    ]
    return "\n".join(lines)


def write(
    out: str | Path,
    seed: int = DEFAULT_SEED,
    n_train: int = DEFAULT_TRAIN,
    n_dev: int = DEFAULT_DEV,
    holdout: float = DEFAULT_HOLDOUT,
) -> dict[str, list[Example]]:
    """Generate and write all files (data, LICENSE, README.md) into ``out``."""
    splits, gen = generate(seed, n_train, n_dev, holdout)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, examples in splits.items():
        cols = {
            "seq.in": [" ".join(ex.tokens) for ex in examples],
            "seq.out": [" ".join(ex.tags) for ex in examples],
            "label": [ex.intent for ex in examples],
        }
        for kind, rows in cols.items():
            (out / f"{name}.{kind}").write_bytes("".join(r + "\n" for r in rows).encode("utf-8"))
    (out / "LICENSE").write_bytes(LICENSE_TEXT.encode("utf-8"))
    command = _command(seed, n_train, n_dev, holdout)
    (out / "README.md").write_bytes(readme_text(splits, gen, command, seed).encode("utf-8"))
    return splits


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="data_prep/make_toy_slots.py",
        description="Generate the toy slot-filling / intent dataset shipped with seqkit.",
    )
    p.add_argument(
        "--out", help=f"output directory (default: {DEFAULT_OUT} in the project root)"
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--train", type=int, default=DEFAULT_TRAIN, help="train sentences")
    p.add_argument("--dev", type=int, default=DEFAULT_DEV, help="dev sentences")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT,
                   help="fraction of each value list used only in dev")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.train < 1 or args.dev < 1 or not 0 <= args.holdout < 1:
        print("data_prep: error: --train/--dev must be >= 1 and 0 <= --holdout < 1",
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(__file__).resolve().parent.parent / DEFAULT_OUT
    try:
        splits = write(out, args.seed, args.train, args.dev, args.holdout)
    except (OSError, RuntimeError) as err:
        print(f"data_prep: error: {err}", file=sys.stderr)
        return 2
    print(
        f"toy slots (seed {args.seed}): wrote train {len(splits['train'])} / "
        f"dev {len(splits['dev'])} sentences to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
