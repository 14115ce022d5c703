"""What both offline generators share: the pools of slot values each split may use, and filling a
template from them. Train and validation get disjoint workplaces, templates and invented items.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from recipes import template_data
from takeoff.feedback.keeps import content_words
from takeoff.feedback.task import CRITICAL_LABELS, LABELS

SLOTS, PARTS, CONDUCT = template_data.slots(), template_data.rewrite_parts(), template_data.conduct()
FAULTS = template_data.faults()
STOPWORDS = set("about after again also because been before being could does doing from have having here "
                "into just more most much only other over same should some such than that their them then "
                "there these they this those through under very were what when where which while will with "
                "would your yours".split())


@dataclass
class Pools:
    """The slot values one split may use; train and validation get disjoint ones."""
    workplaces: list
    templates: dict           # label -> [(template, issue)]
    invented_items: list[str]
    conduct: dict             # "habits" -> (base, -ing form, goal); "habit" / "role" -> criticisms (conduct.yaml)
    no_subject: list[str]     # critical templates with no slot and nothing to name: "You're useless."
    parts: dict               # "singular" / "plural" -> parts of a piece of work with a fault (faults.yaml)


def article(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" or noun.startswith("HR") else "a ") + noun


def sentence_case(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"(^|[.?!] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


# "the pricing page", "the invoice", "the morning rota plan": no one shape for the rewriter to fall back on.
ITEM_SHAPES = ("{word} {doc}", "{word}", "{word} {other}", "{word} {other} {doc}")


def invented_items(seed: int, num_words: int = 30000) -> tuple[list[str], list[str]]:
    """Work items of one or two common English words, half of them with a document noun, split by word.

    Each word heads one item; the rewriter can only get these right by copying what the
    criticism names, and validation's words never occur in training items.
    """
    from wordfreq import top_n_list
    words = [w for w in top_n_list("en", num_words)[300:]
             if w.isalpha() and w.isascii() and 3 <= len(w) <= 12 and w not in STOPWORDS]
    random.Random(seed).shuffle(words)
    rng = random.Random(seed + 1)
    cut = len(words) * 4 // 5

    def items(pool: list[str]) -> list[str]:
        return ["the " + rng.choice(ITEM_SHAPES).format(word=w, other=rng.choice(pool), doc=rng.choice(SLOTS.doc_nouns))
                for w in pool]
    return items(words[:cut]), items(words[cut:])


def split_off(values, validation_fraction: float, rng: random.Random) -> tuple[list, list]:
    """(validation, train): a shuffled copy of `values` cut with at least one for validation."""
    values = list(values)
    rng.shuffle(values)
    cut = max(1, round(len(values) * validation_fraction))
    return values[:cut], values[cut:]


def split_pools(seed: int, validation_fraction: float) -> tuple[Pools, Pools]:
    rng = random.Random(seed)
    val_places, train_places = split_off(SLOTS.workplaces, validation_fraction, rng)
    train_templates, val_templates = {}, {}
    for label in LABELS:
        # Each label's split draws from its own generator: templates added to one label leave the others' alone.
        templates, label_rng = template_data.label_templates()[label], random.Random(f"{seed}:{label}")
        val_templates[label], train_templates[label] = split_off(templates, validation_fraction, label_rng)
    train_items, val_items = invented_items(seed)
    train_conduct, val_conduct = {}, {}
    for kind, values in (("habits", CONDUCT.habits), ("habit", CONDUCT.habit_criticisms),
                         ("role", CONDUCT.role_criticisms)):
        val_conduct[kind], train_conduct[kind] = split_off(values, validation_fraction, rng)
    train_parts, val_parts = {}, {}
    for number, values in (("singular", FAULTS.singular_parts), ("plural", FAULTS.plural_parts)):
        # Its own generator: parts added to faults.yaml leave the other splits alone.
        val_parts[number], train_parts[number] = split_off(values, validation_fraction, random.Random(f"{seed}:{number}"))
    return (Pools(train_places, train_templates, train_items, train_conduct, no_subject(train_templates), train_parts),
            Pools(val_places, val_templates, val_items, val_conduct, no_subject(val_templates), val_parts))


def no_subject(templates: dict) -> list[str]:
    """Critical templates with no slot and no word a rewrite could name: "You're useless.", "Weak."."""
    return [t for label in CRITICAL_LABELS for t, _ in templates[label] if "{" not in t and not content_words(t)]


def pick_item(rng: random.Random, pools: Pools, workplace=None, invented_share: float = 0.23) -> str:
    """A personal, everyday, invented or workplace item, as a "the", "your", "this" or "that" phrase."""
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(SLOTS.personal_items)
    if roll < 0.22:
        item = rng.choice(SLOTS.generic_items)
    elif roll < 0.22 + invented_share:
        item = rng.choice(pools.invented_items)
    else:
        item = rng.choice((workplace or rng.choice(pools.workplaces)).items)
    roll = rng.random()
    if roll < 0.1:
        return ("this " if roll < 0.07 else "that ") + item[4:]
    return "your " + item[4:] if roll < 0.3 else item


def fill(template: str, rng: random.Random, item: str, issue: str | None = None) -> str:
    issue = issue or rng.choice(SLOTS.issues)
    name, other_name = rng.sample(SLOTS.names, 2)  # "Hey Sam, ask Sam to review it" reads as nonsense
    values = dict(item=item, name=name, time=rng.choice(SLOTS.times),
                  deadline=rng.choice(SLOTS.deadlines), aspect=rng.choice(SLOTS.aspects),
                  strength=rng.choice(SLOTS.strengths), doc=item.split()[-1])
    values["fix"] = rng.choice(SLOTS.fixes[issue]).format_map(dict(values, name=other_name))
    return sentence_case(template.format_map(values))


# Swaps that keep a sentence's label and grammar; each applies to a word with probability 1/2.
def lower_first(text: str) -> str:
    """The first letter in lower case, unless it is the pronoun I."""
    return text if text.startswith(("I ", "I'")) else text[0].lower() + text[1:]
