"""CUHK-PEDES-style free-text descriptions from identity attributes.

Every caption is built from varied templates and synonyms and mentions a random subset (at
least three groups) of the attributes; :func:`describe_structured` also returns which
attribute each mentioned word stands for, so consistency is checkable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .attributes import IdentityAttributes
from .palette import COLOURS, HAIR_COLOURS

#: Caption words for each categorical attribute value (first = most common).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "male": ("man", "guy", "gentleman", "young man", "male pedestrian"),
        "female": ("woman", "lady", "girl", "young woman", "female pedestrian"),
    },
    "upper_type": {
        "t-shirt": ("t-shirt", "tee", "tee shirt"),
        "shirt": ("shirt", "button-up shirt", "button-down shirt"),
        "jacket": ("jacket", "zip-up jacket"),
        "coat": ("coat", "overcoat", "long coat"),
        "hoodie": ("hoodie", "hooded sweatshirt"),
        "sweater": ("sweater", "jumper", "pullover"),
        "dress": ("dress", "knee-length dress"),
    },
    "upper_pattern": {
        "striped": ("striped", "stripy"),
        "checked": ("checked", "plaid", "checkered"),
        "logo": ("logo", "printed logo"),
    },
    "upper_material": {
        "leather": ("leather",),
        "denim": ("denim", "jean"),
        "wool": ("wool", "woolen"),
    },
    "lower_type": {
        "trousers": ("trousers", "pants", "slacks"),
        "jeans": ("jeans", "denim pants", "denim jeans"),
        "shorts": ("shorts",),
        "skirt": ("skirt", "knee-length skirt"),
    },
    "shoes_type": {
        "sneakers": ("sneakers", "trainers", "sports shoes", "running shoes"),
        "boots": ("boots", "ankle boots"),
        "leather shoes": ("leather shoes", "dress shoes"),
        "sandals": ("sandals",),
    },
    "bag": {
        "backpack": ("backpack", "rucksack"),
        "handbag": ("handbag", "purse"),
        "shoulder bag": ("shoulder bag", "crossbody bag", "messenger bag"),
    },
    "hat": {"cap": ("cap", "baseball cap"), "beanie": ("beanie", "knit hat", "woolly hat")},
    "glasses": {
        "glasses": ("glasses", "spectacles", "eyeglasses"),
        "sunglasses": ("sunglasses", "shades"),
    },
    "hair_style": {
        "short": ("short",),
        "long": ("long",),
        "ponytail": ("ponytail",),
        "bald": ("bald", "shaved head"),
    },
    "build": {"slim": ("slim", "thin", "slender"), "heavy": ("heavyset", "chubby", "stout")},
}

_GROUPS = ("gender", "hair", "upper", "lower", "shoes", "bag", "hat", "glasses", "build")


@dataclass
class Caption:
    """A description and, per attribute name, the caption word(s) used for it."""

    text: str
    mentions: dict[str, str] = field(default_factory=dict)

    @property
    def groups(self) -> set[str]:
        """Attribute groups (gender, hair, upper, ...) the caption mentions."""
        return {"upper" if k == "pattern_color" else k.split("_")[0] for k in self.mentions}


def colour_words(name: str, hair: bool = False) -> tuple[str, ...]:
    """Caption words for a colour name."""
    return (HAIR_COLOURS if hair else COLOURS)[name].synonyms


def tokenize(text: str) -> list[str]:
    """CUHK-PEDES ``processed_tokens``: lower-case words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class _Builder:
    """Accumulates phrases and the attribute → word mentions behind them."""

    def __init__(self, attrs: IdentityAttributes, rng: np.random.Generator) -> None:
        self.a = attrs
        self.rng = rng
        self.mentions: dict[str, str] = {}

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def word(self, key: str, value: str) -> str:
        w = self.pick(SYNONYMS[key][value])
        self.mentions[key] = w
        return w

    def colour(self, key: str, name: str, hair: bool = False) -> str:
        w = self.pick(colour_words(name, hair))
        self.mentions[key] = w
        return w

    def upper(self) -> str:
        a = self.a
        words: list[str] = []
        words.append(self.colour("upper_color", a.upper_color))
        pattern = a.upper_pattern
        suffix = ""
        if pattern in ("striped", "checked") and self.rng.random() < 0.85:
            if self.rng.random() < 0.4:
                second = self.colour("pattern_color", a.pattern_color)
                words.append(f"and {second}")
            words.append(self.word("upper_pattern", pattern))
        elif pattern == "logo" and self.rng.random() < 0.7:
            logo = self.word("upper_pattern", "logo")
            suffix = f" with a {logo} on the front"
        if a.upper_material in SYNONYMS["upper_material"] and self.rng.random() < 0.6:
            words.append(self.word("upper_material", a.upper_material))
            self.mentions["upper_type"] = SYNONYMS["upper_type"][a.upper_type][0]
            words.append(self.mentions["upper_type"])
        else:
            words.append(self.word("upper_type", a.upper_type))
        if a.upper_type == "dress" and a.sleeves == "none" and self.rng.random() < 0.4:
            words.insert(0, "sleeveless")
        phrase = " ".join(words)
        return f"{_article(phrase)} {phrase}{suffix}"

    def lower(self) -> str:
        a = self.a
        col = self.colour("lower_color", a.lower_color)
        kind = self.word("lower_type", a.lower_type)
        if a.lower_type == "skirt":
            return f"{_article(col)} {col} {kind}"
        return self.pick([f"{col} {kind}", f"a pair of {col} {kind}"])

    def shoes(self) -> str:
        col = self.colour("shoes_color", self.a.shoes_color)
        return f"{col} {self.word('shoes_type', self.a.shoes_type)}"

    def bag(self) -> str:
        col = self.colour("bag_color", self.a.bag_color)
        return f"{_article(col)} {col} {self.word('bag', self.a.bag)}"

    def hat(self) -> str:
        col = self.colour("hat_color", self.a.hat_color)
        return f"{_article(col)} {col} {self.word('hat', self.a.hat)}"

    def hair(self) -> str:
        """A noun phrase: 'long black hair', 'a ponytail', 'a shaved head'."""
        a = self.a
        if a.hair_style == "bald":
            self.mentions["hair_style"] = "shaved head"
            return "a shaved head"
        col = self.colour("hair_color", a.hair_color, hair=True)
        if a.hair_style == "ponytail":
            self.mentions["hair_style"] = "ponytail"
            return self.pick([f"{col} hair tied in a ponytail", f"a {col} ponytail"])
        style = self.word("hair_style", a.hair_style)
        return f"{style} {col} hair"


def describe_structured(attrs: IdentityAttributes, rng: np.random.Generator) -> Caption:
    """One caption plus the attribute → word mentions it contains."""
    b = _Builder(attrs, rng)
    a = attrs
    avail = ["upper", "shoes", "hair"]
    if a.lower_type != "none":
        avail.append("lower")
    for grp, present in (
        ("bag", a.bag != "none"),
        ("hat", a.hat != "none"),
        ("glasses", a.glasses != "none"),
        ("build", a.build != "average"),
    ):
        if present:
            avail.append(grp)
    chosen = [
        g
        for g in avail
        if rng.random()
        < {
            "upper": 0.95,
            "lower": 0.85,
            "bag": 0.8,
            "hair": 0.6,
            "shoes": 0.5,
            "hat": 0.8,
            "glasses": 0.7,
            "build": 0.3,
        }[g]
    ]
    gendered = bool(rng.random() < 0.8)
    order = list(rng.permutation(avail))
    while len(chosen) + int(gendered) < 3 and order:
        g = str(order.pop())
        if g not in chosen:
            chosen.append(g)
    if len(chosen) + int(gendered) < 3:
        gendered = True
    noun = (
        b.word("gender", a.gender) if gendered else b.pick(["person", "pedestrian", "individual"])
    )
    if gendered:
        pron, poss = ("She", "her") if a.gender == "female" else ("He", "his")
    else:
        pron = b.pick(["The person", "This pedestrian", "The individual"])
        poss = "their"

    sentences: list[str] = []
    rest = list(chosen)
    template = int(rng.integers(4))
    clothes = ""
    if "upper" in rest:
        rest.remove("upper")
        clothes = b.upper()
        if "lower" in rest and rng.random() < 0.8:
            rest.remove("lower")
            clothes += f" and {b.lower()}"
    elif "lower" in rest:
        rest.remove("lower")
        clothes = b.lower()
    hair_np = ""
    if "hair" in rest and template in (0, 2):
        rest.remove("hair")
        hair_np = b.hair()
    wear = b.pick(["wearing", "dressed in", "in"])
    if template == 0:
        art = b.pick([_article(noun).capitalize(), "The", "This"])
        with_hair = f" with {hair_np}" if hair_np else ""
        first = f"{art} {noun}{with_hair}"
        sentences.append(
            f"{first} is {wear} {clothes}."
            if clothes and wear != "in"
            else (f"{first} {wear} {clothes}." if clothes else f"{first} is walking.")
        )
    elif template == 1:
        sentences.append(
            f"The {noun} is wearing {clothes}." if clothes else f"The {noun} is walking."
        )
    elif template == 2:
        subj = f"This {noun}"
        if hair_np and clothes:
            sentences.append(f"{subj} has {hair_np} and is {wear} {clothes}.")
        elif hair_np:
            sentences.append(f"{subj} has {hair_np}.")
        else:
            sentences.append(f"{subj} is wearing {clothes}." if clothes else f"{subj} is walking.")
    else:
        lead = _article(noun).capitalize()
        sentences.append(
            f"{lead} {noun} {wear} {clothes}." if clothes else f"{lead} {noun} walking."
        )
    for g in rng.permutation(rest):
        g = str(g)
        if g == "lower":
            sentences.append(f"{pron} is also wearing {b.lower()}.")
        elif g == "shoes":
            shoes = b.shoes()
            sentences.append(
                b.pick(
                    [
                        f"{pron} is wearing {shoes}.",
                        f"{pron} has {shoes} on.",
                        f"On {poss} feet are {shoes}.",
                    ]
                )
            )
        elif g == "bag":
            where = {
                "backpack": "on " + poss + " back",
                "handbag": "in " + poss + " hand",
                "shoulder bag": "over " + poss + " shoulder",
            }[a.bag]
            bag = b.bag()
            sentences.append(b.pick([f"{pron} is carrying {bag}.", f"{pron} has {bag} {where}."]))
        elif g == "hat":
            hat = b.hat()
            sentences.append(b.pick([f"{pron} wears {hat}.", f"{pron} has {hat} on {poss} head."]))
        elif g == "glasses":
            w = b.word("glasses", a.glasses)
            sentences.append(b.pick([f"{pron} is wearing {w}.", f"{pron} has {w} on."]))
        elif g == "hair":
            hair = b.hair()
            sentences.append(b.pick([f"{pron} has {hair}.", f"{pron} is seen with {hair}."]))
        elif g == "build":
            w = b.word("build", a.build)
            sentences.append(
                b.pick([f"{pron} is {w}.", f"{pron} looks {w}.", f"{pron} has a {w} build."])
            )
    text = " ".join(sentences)
    text = text[0].upper() + text[1:]
    return Caption(text=text, mentions=b.mentions)


def describe(attrs: IdentityAttributes, rng: np.random.Generator) -> str:
    """A free-text description of ``attrs`` (see :func:`describe_structured`)."""
    return describe_structured(attrs, rng).text
