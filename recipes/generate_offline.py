"""Generate both datasets from templates and slot fillers, no LLM needed.

    python -m recipes.generate_offline --out data/offline

Train and validation come from disjoint templates, workplaces and invented work items, so the
validation figures measure generalisation to unseen phrasings and contexts, not recall. The template
data is in recipes/data/ (recipes.template_data); rewrite pairs are made in recipes.offline_pairs.
"""
from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from tqdm import tqdm

from recipes.datasets import dedupe, distribution, normalise, shuffled, write_split
from recipes.offline_fill import SLOTS, Pools, fill, lower_first, pick_item, split_pools
from recipes.offline_pairs import FAULT_SHARE, ITEMLESS_SHARE, NO_SUBJECT_SHARE, rewrite_pair
from takeoff.feedback.task import CRITICAL_LABELS, LABELS

CRITICAL_OPENERS = ["Honestly, ", "Look, ", "To be frank, ", "{name}, ", "Seriously, ", "Well, ", "Again, "]
CONSTRUCTIVE_OPENERS = ["{name}, ", "Hey, ", "By the way, ", "Just a thought: ", "Quick note: ", "So, "]
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


def join_clauses(first: str, second: str, rng: random.Random) -> str:
    """Two sentences of one label as one sentence: "X; y", "X, and y", "X - y", or run on: "X, y",
    "X and y", "X y"."""
    return first.rstrip(".!") + rng.choice(["; ", ", and ", " - ", ", ", " and ", " "]) + lower_first(second)


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


def roughen(sentence: str, label: str, rng: random.Random) -> str:
    """How people type in a hurry: a typo, chat shorthand ("u", "tbh"), ALL CAPS or one word in
    capitals, an emoji, "!!!". Each is rare, so most sentences stay as written."""
    if rng.random() < 0.12:
        sentence = typo(sentence, rng)
    if rng.random() < 0.06:
        for phrase, short in sorted(SLOTS.shorthand.items(), key=lambda pair: -len(pair[0])):
            sentence = re.sub(rf"\b{re.escape(phrase)}\b", short, sentence, flags=re.IGNORECASE)
    if rng.random() < 0.03:
        sentence = sentence.upper()
    elif rng.random() < 0.04:
        words = sentence.split(" ")
        index = rng.randrange(len(words))
        sentence = " ".join(words[:index] + [words[index].upper()] + words[index + 1:])
    if rng.random() < 0.07:
        kind = "either" if rng.random() < 0.3 else ("critical" if label in CRITICAL_LABELS else "constructive")
        sentence += " " + rng.choice(SLOTS.emoji[kind])
    if rng.random() < 0.03:
        sentence = sentence.rstrip(".!") + rng.choice(["!!!", "!!", "?!", "..."])
    return sentence


def typo(sentence: str, rng: random.Random) -> str:
    """One slip of the keyboard in a word of four letters or more: a letter dropped, doubled or swapped."""
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", sentence)]
    if not words:
        return sentence
    word = rng.choice(words)
    text, at = word.group(), rng.randrange(1, len(word.group()) - 1)
    slip = rng.choice([text[:at] + text[at + 1:], text[:at] + text[at] + text[at:],
                       text[:at] + text[at + 1] + text[at] + text[at + 2:]])
    return sentence[:word.start()] + slip + sentence[word.end():]


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
            sentence = roughen(decorate(paraphrase(sentence, rng), label, rng), label, rng)
            if normalise(sentence) not in seen:
                seen.add(normalise(sentence))
                rows.append(dict(sentence=sentence, label=label, template=template, item=item))
            if len(seen) == num_per_label:
                break
    return rows


def generate(num_per_label: int, num_pairs: int, validation_fraction: float, seed: int,
             conduct_share: float = 0.0, itemless_share: float = ITEMLESS_SHARE,
             no_subject_share: float = NO_SUBJECT_SHARE, fault_share: float = FAULT_SHARE) -> dict:
    """{'classification': (train, validation), 'rewrite': (train, validation)} as row dicts."""
    rng = random.Random(seed)
    pair_rng = random.Random(seed + 1)  # more or fewer sentences must not change the pairs
    train_pools, val_pools = split_pools(seed, validation_fraction)
    num_val_per_label = max(1, int(num_per_label * validation_fraction))
    num_val_pairs = max(1, int(num_pairs * validation_fraction))
    out = {}
    cls = [classification_rows(p, n, rng) for p, n in ((train_pools, num_per_label), (val_pools, num_val_per_label))]
    out["classification"] = [shuffled(dedupe(rows, ("sentence",))[0], seed) for rows in cls]
    pairs = [[rewrite_pair(p, pair_rng, conduct_share, itemless_share, no_subject_share, fault_share)
              for _ in tqdm(range(n), desc="pairs", leave=False)]
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
    parser.add_argument("--no-subject-share", type=float, default=NO_SUBJECT_SHARE,
                        help="share of rewrite pairs whose criticism names nothing ('You're useless.'), answered by "
                             "asking what would help")
    parser.add_argument("--fault-share", type=float, default=FAULT_SHARE,
                        help="share of work pairs whose criticism also says what is wrong with a part of the work "
                             "('the totals don't add up'), restated in the same words by the answer "
                             "(recipes/data/faults.yaml), so the rewriter keeps the problem, not only the subject")
    args = parser.parse_args(argv)
    data = generate(args.num_per_label, args.num_pairs, args.validation_fraction, args.seed, args.conduct_share,
                    args.itemless_share, args.no_subject_share, args.fault_share)
    for task, (train, validation) in data.items():
        write_split(args.out, task, train, validation)
        print(f"{task}: {len(train)} train, {len(validation)} validation -> {args.out / task}")
    contexts = distribution(r["workplace"] for r in data["rewrite"][0])
    print("rewrite contexts (train), most and least common:", contexts[:3], contexts[-3:])


if __name__ == "__main__":
    main()
