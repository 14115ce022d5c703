"""Generate both datasets from templates and slot fillers, no LLM needed.

    python -m recipes.generate_offline --out data/offline

Train and validation come from disjoint templates, workplaces and invented work items, so the
validation figures measure generalisation to unseen phrasings and contexts, not recall.
"""
from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from recipes import template_data
from recipes.datasets import dedupe, distribution, normalise, shuffled, write_split
from takeoff.feedback.task import CRITICAL_LABELS, LABELS

SLOTS, PARTS, CONDUCT = template_data.slots(), template_data.rewrite_parts(), template_data.conduct()

CRITICAL_OPENERS = ["Honestly, ", "Look, ", "To be frank, ", "{name}, ", "Seriously, ", "Well, ", "Again, "]
CONSTRUCTIVE_OPENERS = ["{name}, ", "Hey, ", "By the way, ", "Just a thought: ", "Quick note: ", "So, "]
# Share of a rewrite pair's second and third critical sentences that name no item (see follow_up).
ITEMLESS_SHARE = 0.8
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
        val_templates[label], train_templates[label] = split_off(template_data.label_templates()[label], validation_fraction, rng)
    train_items, val_items = invented_items(seed)
    train_conduct, val_conduct = {}, {}
    for kind, values in (("habits", CONDUCT.habits), ("habit", CONDUCT.habit_criticisms),
                         ("role", CONDUCT.role_criticisms)):
        val_conduct[kind], train_conduct[kind] = split_off(values, validation_fraction, rng)
    return (Pools(train_places, train_templates, train_items, train_conduct),
            Pools(val_places, val_templates, val_items, val_conduct))


def pick_item(rng: random.Random, pools: Pools, workplace=None, invented_share: float = 0.23) -> str:
    """A personal, everyday, invented or workplace item, as "the", "your" or "this" phrase."""
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
        return "this " + item[4:]
    return "your " + item[4:] if roll < 0.3 else item


def fill(template: str, rng: random.Random, item: str, issue: str | None = None) -> str:
    issue = issue or rng.choice(PARTS.issues)
    name, other_name = rng.sample(SLOTS.names, 2)  # "Hey Sam, ask Sam to review it" reads as nonsense
    values = dict(item=item, name=name, time=rng.choice(SLOTS.times),
                  deadline=rng.choice(SLOTS.deadlines), aspect=rng.choice(SLOTS.aspects),
                  strength=rng.choice(SLOTS.strengths), doc=item.split()[-1])
    values["fix"] = rng.choice(PARTS.fixes[issue]).format_map(dict(values, name=other_name))
    return sentence_case(template.format_map(values))


# Swaps that keep a sentence's label and grammar; each applies to a word with probability 1/2.
SYNONYMS = {
    "really": ["truly", "genuinely", "honestly"], "great": ["excellent", "superb", "terrific"],
    "terrible": ["awful", "dreadful", "appalling"], "mistakes": ["errors", "slip-ups"],
    "errors": ["mistakes", "inaccuracies"], "team": ["group", "whole team"], "client": ["customer"],
    "help": ["support"], "improve": ["work on", "strengthen"], "quickly": ["fast", "promptly"],
    "next time": ["in future", "going forward"], "bad": ["poor", "weak"], "fix": ["sort out", "correct"],
    "thanks": ["thank you", "many thanks"], "brilliant": ["excellent", "fantastic"], "mess": ["shambles", "muddle"],
    "late": ["overdue", "behind schedule"], "job": ["position", "role"], "fired": ["sacked", "let go"],
    "clearly": ["obviously", "plainly"], "work": ["effort"], "a bit": ["slightly", "somewhat"],
}
SYNONYM_PATTERN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b",
                             re.IGNORECASE)


def paraphrase(sentence: str, rng: random.Random) -> str:
    """Swap some words for synonyms, keeping a capital where there was one."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        if rng.random() < 0.5:
            return word
        choice = rng.choice(SYNONYMS[word.lower()])
        return choice[0].upper() + choice[1:] if word[0].isupper() else choice
    return SYNONYM_PATTERN.sub(swap, sentence)


def lower_first(text: str) -> str:
    """The first letter in lower case, unless it is the pronoun I."""
    return text if text.startswith(("I ", "I'")) else text[0].lower() + text[1:]


def join_clauses(first: str, second: str, rng: random.Random) -> str:
    """Two sentences of one label as one sentence: "X; y" or "X, and y" or "X - y"."""
    return first.rstrip(".!") + rng.choice(["; ", ", and ", " - "]) + lower_first(second)


def decorate(sentence: str, label: str, rng: random.Random) -> str:
    """Openers, lower case and missing full stops: how people actually type."""
    if rng.random() < 0.2:
        openers = CRITICAL_OPENERS if label in CRITICAL_LABELS else CONSTRUCTIVE_OPENERS
        opener = rng.choice(openers).format(name=rng.choice(SLOTS.names))
        sentence = opener + lower_first(sentence)
    if rng.random() < 0.1:
        sentence = sentence.lower()
    if rng.random() < 0.1:
        sentence = sentence.rstrip(".!")
    return sentence


def classification_rows(pools: Pools, num_per_label: int, rng: random.Random) -> list[dict]:
    """Up to `num_per_label` distinct sentences per label (few templates lack slots, so they repeat)."""
    rows = []
    for label in tqdm(LABELS, desc="classification", leave=False):
        seen: set[str] = set()
        for _ in range(num_per_label * 5):
            template, issue = rng.choice(pools.templates[label])
            item = pick_item(rng, pools)
            sentence = fill(template, rng, item, issue)
            if rng.random() < 0.12 and sentence[-1] != "?":
                other = fill(rng.choice(pools.templates[label])[0], rng, item)
                sentence = join_clauses(sentence, other, rng)
            sentence = decorate(paraphrase(sentence, rng), label, rng)
            if normalise(sentence) not in seen:
                seen.add(normalise(sentence))
                rows.append(dict(sentence=sentence, label=label, template=template, item=item))
            if len(seen) == num_per_label:
                break
    return rows


def context_for(workplace, item: str | None, rng: random.Random) -> str:
    """A context for feedback about `item`, or, with None, one that names no work item."""
    name, giver, receiver, _ = workplace
    about = re.sub(r"^your ", "their ", item or "")
    templates = SLOTS.context_templates if item else [t for t in SLOTS.context_templates if "{item}" not in t]
    template = rng.choice(templates)
    a_receiver = article(receiver)
    if "{item}" not in template and rng.random() < 0.4:
        # "... feedback to your trainee, who ...": a person after "your", not the thing criticised.
        a_receiver = "your " + (receiver if rng.random() < 0.5 else rng.choice(SLOTS.generic_receivers))
    return sentence_case(template.format(
        a_giver=article(giver), A_giver=article(giver).capitalize(), giver=giver,
        a_receiver=a_receiver, workplace=name, item=about, situation=rng.choice(SLOTS.situations)))


def rewrite_pair(pools: Pools, rng: random.Random, conduct_share: float, itemless_share: float) -> dict:
    """A pair about a piece of work or, `conduct_share` of the time, about a habit (three in five) or
    about the person in their role ("call yourself a nurse?"), naming no work item."""
    roll = rng.random()
    if roll < conduct_share:
        return conduct_pair(pools, rng, about_habit=roll < 0.6 * conduct_share)
    return work_pair(pools, rng, itemless_share)


def conduct_pair(pools: Pools, rng: random.Random, about_habit: bool) -> dict:
    """A criticism of a habit (maybe with a jab at the person's role) or of the person in their role,
    answered by a constructive rewrite that names the same habit or role."""
    workplace = rng.choice(pools.workplaces)
    role = workplace.receiver
    base, ger, goal = rng.choice(pools.conduct["habits"]) if about_habit else ("", "", "")
    values = dict(base=base, ger=ger, Ger=ger[:1].upper() + ger[1:], goal=goal, role=role, a_role=article(role),
                  name=rng.choice(SLOTS.names), time=rng.choice(SLOTS.times))
    first = rng.choice(pools.conduct["habit" if about_habit else "role"])
    clauses = [first.format_map(values)]
    if rng.random() < 0.3:
        clauses.append(rng.choice(pools.conduct["role"]).format_map(values))
    if about_habit:
        # The rewrite names the habit in the form the criticism used ("you skip" / "skipping"), so the
        # model copies it rather than having to inflect a verb it may never have seen.
        form = "{base}" if "{base}" in first else "{ger}"
        answer = rng.choice([t for t in CONDUCT.habit_rewrites if form in t.replace("{Ger}", "{ger}")])
    else:
        answer = rng.choice(CONDUCT.role_rewrites)
    return dict(context=context_for(workplace, None, rng), negative=" ".join(clauses),
                constructive=sentence_case(answer.format_map(values)), workplace=workplace.name, template=first,
                item=base or role, kind="habit" if about_habit else "role")


def follow_up(pools: Pools, rng: random.Random, label: str, item: str, itemless_share: float) -> str:
    """A further critical clause after the one that names the item. `itemless_share` of them name no
    item ("I'm afraid we will have to evaluate your position if this continues."), so the model learns
    to take the subject from the clause that names it, not from the last "this ..." it read."""
    templates = pools.templates[label]
    if itemless_share and rng.random() < itemless_share:
        templates = [t for t in templates if "{item}" not in t[0]] or templates
    return fill(rng.choice(templates)[0], rng, item)


def work_pair(pools: Pools, rng: random.Random, itemless_share: float) -> dict:
    """One to three critical clauses about one item, and a constructive answer about the same item."""
    workplace = rng.choice(pools.workplaces)
    # Invented items are half the pairs: the model can only get them right by copying.
    item = pick_item(rng, pools, workplace, invented_share=0.45)
    labels = rng.sample(CRITICAL_LABELS, rng.choice([1, 1, 2, 2, 3]))
    with_item = ([t for t in pools.templates[labels[0]] if "{item}" in t[0]]
                 or [t for label in CRITICAL_LABELS for t in pools.templates[label] if "{item}" in t[0]])
    first, issue = rng.choice(with_item)
    clauses = [fill(first, rng, item, issue)]
    clauses += [follow_up(pools, rng, label, item, itemless_share) for label in labels[1:]]
    ask = fill(rng.choice(PARTS.ask), rng, item, issue)
    ack, obs = fill(rng.choice(PARTS.acknowledge), rng, item), fill(rng.choice(PARTS.observe[issue]), rng, item)
    constructive = rng.choice(PARTS.connect).format(ack=ack, ask=ask, ask_lower=lower_first(ask),
                                                  obs=lower_first(obs.rstrip(".")))
    return dict(context=context_for(workplace, item, rng), negative=" ".join(clauses),
                constructive=sentence_case(constructive), workplace=workplace.name, template=first, item=item,
                kind="work")


def generate(num_per_label: int, num_pairs: int, validation_fraction: float, seed: int,
             conduct_share: float = 0.0, itemless_share: float = ITEMLESS_SHARE) -> dict:
    """{'classification': (train, validation), 'rewrite': (train, validation)} as row dicts."""
    rng = random.Random(seed)
    pair_rng = random.Random(seed + 1)  # more or fewer sentences must not change the pairs
    train_pools, val_pools = split_pools(seed, validation_fraction)
    num_val_per_label = max(1, int(num_per_label * validation_fraction))
    num_val_pairs = max(1, int(num_pairs * validation_fraction))
    out = {}
    cls = [classification_rows(p, n, rng) for p, n in ((train_pools, num_per_label), (val_pools, num_val_per_label))]
    out["classification"] = [shuffled(dedupe(rows, ("sentence",))[0], seed) for rows in cls]
    pairs = [[rewrite_pair(p, pair_rng, conduct_share, itemless_share) for _ in tqdm(range(n), desc="pairs", leave=False)]
             for p, n in ((train_pools, num_pairs), (val_pools, num_val_pairs))]
    out["rewrite"] = [shuffled(dedupe(rows, ("context", "negative"))[0], seed) for rows in pairs]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/offline"), help="output folder")
    parser.add_argument("--num-per-label", type=int, default=1000, help="training sentences per label")
    parser.add_argument("--num-pairs", type=int, default=20000, help="training rewrite pairs")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conduct-share", type=float, default=0.0,
                        help="share of rewrite pairs that criticise a habit or the person in their role instead of "
                             "a piece of work (templates in recipes/data/conduct.yaml). Off by default: the small demo "
                             "rewriter, trained from scratch, got worse with 0.2 and 0.3 (it garbles habits it "
                             "never saw); a pretrained Flan-T5 may not")
    parser.add_argument("--itemless-share", type=float, default=ITEMLESS_SHARE,
                        help="share of the second and third critical clauses of a rewrite pair drawn from templates "
                             "that name no item ('If this keeps happening, ...'), so the rewriter learns to take its "
                             "subject from the clause that names one. With 0 (about one in four by chance), the demo "
                             "rewriter took 'this continues' as the subject of the original work's example")
    args = parser.parse_args(argv)
    data = generate(args.num_per_label, args.num_pairs, args.validation_fraction, args.seed, args.conduct_share,
                    args.itemless_share)
    for task, (train, validation) in data.items():
        write_split(args.out, task, train, validation)
        print(f"{task}: {len(train)} train, {len(validation)} validation -> {args.out / task}")
    contexts = distribution(r["workplace"] for r in data["rewrite"][0])
    print("rewrite contexts (train), most and least common:", contexts[:3], contexts[-3:])


if __name__ == "__main__":
    main()
