"""Rewrite pairs for the offline generator: a criticism and a constructive answer about the same subject.

The constructive side says nothing the critical side does not (recipes/data/rewrite.yaml): it
acknowledges the work, restates the problem the critical side names (if it names one) and asks for a
next step, with no time, date, number, name or event of its own.
"""
from __future__ import annotations

import random
import re

from recipes.offline_fill import (CONDUCT, FAULTS, PARTS, SLOTS, Pools, article, fill, lower_first, pick_item,
                                  sentence_case)
from takeoff.feedback.task import CRITICAL_LABELS

# Share of a rewrite pair's second and third critical sentences that name no item (see follow_up).
ITEMLESS_SHARE = 0.8
# Share of rewrite pairs whose criticism names nothing at all (see no_subject_pair).
NO_SUBJECT_SHARE = 0.05
# Share of work pairs whose criticism also says what is wrong with a part of the work, in words the
# answer repeats (see with_fault).
FAULT_SHARE = 0.5
# Critical labels whose sentences may name no problem: with no cue words, the answer asks what would help.
NO_PROBLEM_LABELS = ("Personal Attack", "Threat")


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


def rewrite_pair(pools: Pools, rng: random.Random, conduct_share: float, itemless_share: float,
                 no_subject_share: float = 0.0, fault_share: float = 0.0) -> dict:
    """A pair about a piece of work or, `conduct_share` of the time, about a habit (three in five) or
    about the person in their role ("call yourself a nurse?"), naming no work item; `no_subject_share`
    of the time a criticism with nothing to name ("You're useless.")."""
    roll = rng.random()
    if roll < conduct_share:
        return conduct_pair(pools, rng, about_habit=roll < 0.6 * conduct_share)
    if roll < conduct_share + no_subject_share and pools.no_subject:
        return no_subject_pair(pools, rng)
    return work_pair(pools, rng, itemless_share, fault_share)


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
                item=base or role, kind="habit" if about_habit else "role", subject="" if about_habit else role)


def follow_up(pools: Pools, rng: random.Random, label: str, item: str, itemless_share: float) -> str:
    """A further critical clause after the one that names the item. `itemless_share` of them name no
    item ("I'm afraid we will have to evaluate your position if this continues."), so the model learns
    to take the subject from the clause that names it, not from the last "this ..." it read."""
    templates = pools.templates[label]
    if itemless_share and rng.random() < itemless_share:
        templates = [t for t in templates if "{item}" not in t[0]] or templates
    return fill(rng.choice(templates)[0], rng, item)


def work_pair(pools: Pools, rng: random.Random, itemless_share: float, fault_share: float = 0.0) -> dict:
    """One to three critical clauses about one item, and a constructive answer about the same item.
    `fault_share` of them add, after the clause that names the item, a sentence that says what is wrong
    with a part of it (faults.yaml), and the answer restates that fault in the same words."""
    workplace = rng.choice(pools.workplaces)
    # Invented items are half the pairs: the model can only get them right by copying.
    item = pick_item(rng, pools, workplace, invented_share=0.45)
    labels = rng.sample(CRITICAL_LABELS, rng.choice([1, 1, 2, 2, 3]))
    with_item = ([t for t in pools.templates[labels[0]] if "{item}" in t[0]]
                 or [t for label in CRITICAL_LABELS for t in pools.templates[label] if "{item}" in t[0]])
    first, issue = rng.choice(with_item)
    clauses = [fill(first, rng, item, issue)]
    clauses += [follow_up(pools, rng, label, item, itemless_share) for label in labels[1:]]
    fault = None
    if rng.random() < fault_share:
        fault, remedy = fault_of(pools, item, rng)
        clauses.insert(1, sentence_case(rng.choice(FAULTS.critical).format(fault=fault, Fault=fault[0].upper() + fault[1:])))
    negative = typed_casually(" ".join(clauses), item, rng)
    if fault:
        constructive, problem = fault_answer(item, fault, remedy, rng), "fault"
    else:
        constructive, problem = constructive_answer(negative, item, labels, rng)
    return dict(context=context_for(workplace, item, rng), negative=negative, constructive=constructive,
                workplace=workplace.name, template=first, item=item, kind="work", problem=problem, subject=item,
                fault=fault or "")


def constructive_answer(negative: str, item: str, labels: list[str], rng: random.Random) -> tuple[str, str | None]:
    """The constructive side of a work pair, and the problem it restates: the first one the negative
    side names by its words (the item left out: "the late shift rota" names no delay); failing that,
    "quality" when a clause judges the work, and None when the clauses only attack or threaten, in
    which case the answer asks what would help."""
    problem = PARTS.named_problem(re.sub(re.escape(item), " ", negative, flags=re.IGNORECASE))
    if problem is None and not set(labels) <= set(NO_PROBLEM_LABELS):
        problem = "quality"
    ack = fill(rng.choice(PARTS.acknowledge), rng, item)
    if problem is None:
        ask = fill(rng.choice(PARTS.help), rng, item)
        return sentence_case(rng.choice(PARTS.connect_without_problem).format(ack=ack, ask=ask)), None
    ask = fill(rng.choice(PARTS.problems[problem].ask if rng.random() < 0.75 else PARTS.help), rng, item)
    obs = rng.choice(PARTS.problems[problem].restate)
    answer = rng.choice(PARTS.connect).format(ack=ack, obs=obs, ask=ask)
    return sentence_case(answer), problem


def fault_of(pools: Pools, item: str, rng: random.Random) -> tuple[str, str]:
    """(fault, remedy): a part of the work and what is wrong with it ("the totals don't add up"), and
    what to ask for ("check the totals again"). No part that shares its last word with the item."""
    plural = rng.random() < 0.5
    parts = [p for p in pools.parts["plural" if plural else "singular"] if p.split()[-1] not in item.lower()]
    part, defect = rng.choice(parts), rng.choice(FAULTS.defects)
    return f"{part} {defect.plural if plural else defect.singular}", defect.remedy.format(part=part)


def fault_answer(item: str, fault: str, remedy: str, rng: random.Random) -> str:
    """A constructive answer that restates the fault in the criticism's words and asks for its remedy."""
    ack = fill(rng.choice(PARTS.acknowledge), rng, item)
    ask = rng.choice(FAULTS.asks).format(remedy=remedy)
    frame = rng.choice(FAULTS.constructive)
    return sentence_case(frame.format(ack=ack, fault=fault, Fault=fault[0].upper() + fault[1:], item=item, ask=ask))


def typed_casually(negative: str, item: str, rng: random.Random) -> str:
    """One negative side in ten in lower case, one in ten without its last full stop, as people type;
    an item with capitals ("the API design") keeps them, since the answer copies it."""
    if rng.random() < 0.1 and item == item.lower():
        negative = negative.lower()
    if rng.random() < 0.1:
        negative = negative.rstrip(".")
    return negative


def no_subject_pair(pools: Pools, rng: random.Random) -> dict:
    """One or two critical sentences with nothing in them to name ("You're useless. Get a brain."),
    answered by asking what would help."""
    workplace = rng.choice(pools.workplaces)
    templates = rng.sample(pools.no_subject, min(len(pools.no_subject), rng.choice([1, 1, 2])))
    return dict(context=context_for(workplace, None, rng), negative=" ".join(templates),
                constructive=rng.choice(PARTS.no_subject), workplace=workplace.name, template=templates[0],
                item="", kind="no_subject", problem=None, subject="")
