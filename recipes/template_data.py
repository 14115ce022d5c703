"""The offline generator's template data, read from the files under recipes/data/.

    templates/<label>.tsv  sentence templates, one file per label; a critical one carries the issue it raises
    rewrite.yaml           the constructive side of a rewrite pair: acknowledgements, problems (their cue
                           words, restatements and asks), asks for help, how the parts join
    slots.yaml             workplaces and the values of the other slots ({name}, {time}, {fix}, contexts, items)
    conduct.yaml           habits, and criticisms and rewrites about a habit or about a person in their role
    faults.yaml            what is wrong with a part of a piece of work, said alike on both sides of a pair
    labels.yaml            what each label means and what tells it from its nearest neighbour

Each loader reads its file once. Lists come back as tuples, in file order: the generator draws from them
by index, so the order is part of the data.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import yaml

from takeoff.feedback.task import LABELS

DATA_DIR = Path(__file__).parent / "data"


class Workplace(NamedTuple):
    name: str            # "a hospital"
    giver: str           # who gives the feedback: "ward sister"
    receiver: str        # who receives it: "nurse"
    items: tuple[str, ...]  # what feedback there is about: "the shift handover", ...


@dataclass(frozen=True)
class Slots:
    workplaces: tuple[Workplace, ...]
    doc_nouns: tuple[str, ...]          # nouns that make an invented item: "the <word> report"
    names: tuple[str, ...]
    times: tuple[str, ...]
    deadlines: tuple[str, ...]
    aspects: tuple[str, ...]
    strengths: tuple[str, ...]
    context_templates: tuple[str, ...]  # the context line of a rewrite pair
    generic_receivers: tuple[str, ...]  # "your <receiver>" in a context that names no item
    situations: tuple[str, ...]         # "... who {situation}" in a context that names no item
    generic_items: tuple[str, ...]      # everyday items, in both splits
    personal_items: tuple[str, ...]     # items about the person: "your performance"
    fixes: dict[str, tuple[str, ...]]   # issue -> suggestions, the {fix} slot
    emoji: dict[str, tuple[str, ...]]   # "constructive" / "critical" / "either" -> emoji
    shorthand: dict[str, str]           # phrase -> how chat writes it: "you" -> "u"

    @property
    def issues(self) -> tuple[str, ...]:
        return tuple(self.fixes)


@dataclass(frozen=True)
class Problem:
    cues: re.Pattern | None  # words that name it in a critical sentence; None: the fallback
    restate: tuple[str, ...]
    ask: tuple[str, ...]


@dataclass(frozen=True)
class RewriteParts:
    acknowledge: tuple[str, ...]
    problems: dict[str, Problem]  # in the order their cues are looked for
    help: tuple[str, ...]         # asks for a critical side that names no problem
    connect: tuple[str, ...]      # how {ack}, {obs} and {ask} join
    connect_without_problem: tuple[str, ...]
    no_subject: tuple[str, ...]   # whole answers to a criticism with no subject

    def named_problem(self, text: str) -> str | None:
        """The first problem whose cue words occur in `text`, or None."""
        return next((name for name, problem in self.problems.items()
                     if problem.cues and problem.cues.search(text)), None)


@dataclass(frozen=True)
class Conduct:
    habits: tuple[tuple[str, str, str], ...]  # (base form, -ing form, goal)
    habit_criticisms: tuple[str, ...]
    role_criticisms: tuple[str, ...]
    habit_rewrites: tuple[str, ...]
    role_rewrites: tuple[str, ...]


class Defect(NamedTuple):
    singular: str  # after a part that is one thing: "is missing"
    plural: str    # after a part that is several: "are missing"
    remedy: str    # what to ask for, with a {part} slot: "add {part}"


@dataclass(frozen=True)
class Faults:
    singular_parts: tuple[str, ...]
    plural_parts: tuple[str, ...]
    defects: tuple[Defect, ...]
    critical: tuple[str, ...]      # the critical sentence that names a {fault}
    constructive: tuple[str, ...]  # the constructive answer: {ack}, {fault}, {ask}
    asks: tuple[str, ...]          # asks for the {remedy}


def _tuples(value):
    """YAML lists as tuples, at every depth."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {key: _tuples(v) for key, v in value.items()}
    return value


def read_yaml(name: str) -> dict:
    return _tuples(yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8")))


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated file whose first line (after comments) names the columns. Lines that
    start with # and blank lines are comments; no quoting, so a cell is exactly what the file holds."""
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    for number, cells in enumerate(rows, 2):
        if len(cells) != len(header):
            raise ValueError(f"{path}: data row {number} has {len(cells)} cells, the header {len(header)}")
    return [dict(zip(header, cells)) for cells in rows]


def template_path(label: str) -> Path:
    return DATA_DIR / "templates" / (label.lower().replace(" ", "_") + ".tsv")


@functools.cache
def label_templates() -> dict[str, tuple[tuple[str, str | None], ...]]:
    """label -> ((template, issue), ...); constructive templates raise no issue (None)."""
    return {label: tuple((row["template"], row.get("issue") or None) for row in read_tsv(template_path(label)))
            for label in LABELS}


@functools.cache
def slots() -> Slots:
    values = read_yaml("slots.yaml")
    workplaces = tuple(Workplace(w["workplace"], w["giver"], w["receiver"], w["items"])
                       for w in values.pop("workplaces"))
    return Slots(workplaces=workplaces, **values)


@functools.cache
def rewrite_parts() -> RewriteParts:
    values = read_yaml("rewrite.yaml")
    problems = {name: Problem(re.compile(p["cues"], re.IGNORECASE) if p["cues"] else None, p["restate"], p["ask"])
                for name, p in values.pop("problems").items()}
    return RewriteParts(problems=problems, **values)


@functools.cache
def label_definitions() -> dict[str, dict[str, str]]:
    """label -> {"means": ..., "not": ...}, in the order of LABELS."""
    values = read_yaml("labels.yaml")
    return {label: values[label] for label in LABELS}


@functools.cache
def faults() -> Faults:
    values = read_yaml("faults.yaml")
    return Faults(defects=tuple(Defect(*d) for d in values.pop("defects")), **values)


@functools.cache
def conduct() -> Conduct:
    return Conduct(**read_yaml("conduct.yaml"))
