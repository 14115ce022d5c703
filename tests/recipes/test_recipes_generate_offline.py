"""The offline generator: columns, a split with no leakage, subjects carried into the rewrites."""
from __future__ import annotations

import csv
import random

import pytest

from recipes import generate_offline, offline_fill, offline_pairs
from recipes.datasets import CLASSIFY_COLUMNS, REWRITE_COLUMNS, dedupe, split_by_group
from takeoff.feedback.task import CRITICAL_LABELS, LABELS, rewrite_prompt
from takeoff.feedback.sentences import split_sentences


@pytest.fixture(scope="module")
def data():
    return generate_offline.generate(num_per_label=60, num_pairs=300, validation_fraction=0.2, seed=3,
                                     conduct_share=0.2)


def test_conduct_pairs_are_off_by_default_and_sentences_do_not_change_the_pairs():
    few = generate_offline.generate(num_per_label=20, num_pairs=40, validation_fraction=0.2, seed=3)
    more = generate_offline.generate(num_per_label=30, num_pairs=40, validation_fraction=0.2, seed=3)
    assert {r["kind"] for r in few["rewrite"][0]} <= {"work", "no_subject"}
    assert few["rewrite"] == more["rewrite"] and few["classification"] != more["classification"]


def test_cli_writes_both_tasks_with_their_columns(tmp_path):
    generate_offline.main(["--out", str(tmp_path), "--num-per-label", "20", "--num-pairs", "50"])
    for task, columns in (("classification", CLASSIFY_COLUMNS), ("rewrite", REWRITE_COLUMNS)):
        for split in ("train", "validation"):
            with open(tmp_path / task / f"{split}.csv", newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            assert tuple(reader.fieldnames) == columns
            # A criticism with nothing to name ("You're useless.") has no subject; every other cell is filled.
            assert rows and all(all(row[c] for c in columns if c != "subject") for row in rows)


def test_every_label_in_both_splits(data):
    train, validation = data["classification"]
    assert {r["label"] for r in train} == set(LABELS) == {r["label"] for r in validation}


@pytest.mark.parametrize("task,key", [("classification", "template"), ("classification", "item"),
                                      ("rewrite", "template"), ("rewrite", "workplace"), ("rewrite", "item")])
def test_no_template_workplace_or_item_straddles_the_split(data, task, key):
    train, validation = data[task]
    shared = {r[key] for r in train} & {r[key] for r in validation} - {""}  # no_subject pairs name no item
    # Personal and everyday items ("your performance", "the slides") are shared on purpose.
    everyday = {f"{d} {i.split(' ', 1)[1]}" for i in offline_fill.SLOTS.generic_items for d in ("the", "your", "this", "that")}
    assert key != "item" or shared <= everyday | set(offline_fill.SLOTS.personal_items)
    assert key == "item" or not shared


def test_rewrites_name_the_same_work_item_habit_or_role(data):
    train, validation = data["rewrite"]
    habits = {base: (base, ger) for base, ger, _ in offline_fill.CONDUCT.habits}
    for row in train + validation:
        negative, constructive = row["negative"].lower(), row["constructive"].lower()
        if row["kind"] == "habit":
            # The row names the habit by its base form; a criticism and its rewrite may use the -ing form.
            assert any(form in negative for form in habits[row["item"]]), row
            assert any(form in constructive for form in habits[row["item"]]), row
        else:
            assert row["item"].lower() in negative and row["item"].lower() in constructive, row
    kinds = [r["kind"] for r in train]
    # About a fifth of pairs criticise a habit or the person in their role, not a piece of work.
    assert 0.1 < (kinds.count("habit") + kinds.count("role")) / len(kinds) < 0.3 and kinds.count("role") > 0


def test_pairs_about_a_habit_or_role_have_contexts_that_name_no_work_item(data):
    train, _ = data["rewrite"]
    items = {i for w in offline_fill.SLOTS.workplaces for i in w.items}
    for row in train:
        if row["kind"] != "work":
            assert not any(item[4:] in row["context"] for item in items), row


def test_pairs_vary(data):
    train, _ = data["rewrite"]
    assert len({r["constructive"] for r in train}) > 0.95 * len(train)
    assert len({r["workplace"] for r in train}) >= 20


def test_prompt_matches_the_original_format():
    prompt = rewrite_prompt("You manage a nurse at a hospital.", "The notes are a mess.")
    assert prompt == "Context: You manage a nurse at a hospital. Make the following feedback constructive: The notes are a mess."


def test_dedupe_ignores_case_and_punctuation():
    rows = [dict(sentence="Great job!", label="Positive Comment"), dict(sentence="great  job", label="Positive Comment"),
            dict(sentence="Good job", label="Positive Comment")]
    kept, dropped = dedupe(rows, ("sentence",))
    assert [r["sentence"] for r in kept] == ["Great job!", "Good job"] and dropped == 1


def test_split_by_group_keeps_groups_whole():
    rows = [dict(g=g, i=i) for g in "abcdefghij" for i in range(3)]
    train, validation = split_by_group(rows, lambda r: r["g"], 0.3, seed=1)
    assert len(validation) == 9 and len(train) == 21
    assert not {r["g"] for r in train} & {r["g"] for r in validation}


def test_paraphrase_swaps_words_but_keeps_capitals_and_the_rest():
    rng = random.Random(1)
    outputs = {generate_offline.paraphrase("Great work, the client was really happy.", rng) for _ in range(40)}
    assert "Great work, the client was really happy." in outputs and len(outputs) > 4
    for text in outputs:
        assert text[0].isupper() and text.endswith(" happy.")


def test_joined_clauses_make_one_sentence():
    joined = generate_offline.join_clauses("The deck is late.", "It is full of errors.", random.Random(2))
    assert joined.startswith("The deck is late") and joined.endswith("it is full of errors.")
    assert len(split_sentences(joined)) == 1


def test_conduct_templates_fill_for_every_habit_and_name_their_subject_once():
    from string import Formatter

    conduct = offline_fill.CONDUCT
    fields = lambda t: [f for _, f, _, _ in Formatter().parse(t) if f]  # noqa: E731
    habit_slots, role_slots = {"base", "ger", "Ger"}, {"role", "a_role"}
    for templates, subject in ((conduct.habit_criticisms, habit_slots), (conduct.habit_rewrites, habit_slots),
                               (conduct.role_criticisms, role_slots), (conduct.role_rewrites, role_slots)):
        assert len(set(templates)) == len(templates) >= 20
        for template in templates:
            assert set(fields(template)) <= habit_slots | role_slots | {"goal", "name", "time"}, template
            assert sum(f in subject for f in fields(template)) == 1, template
    assert all("goal" in fields(t) for t in conduct.habit_rewrites)
    assert len({base for base, _, _ in conduct.habits}) == len(conduct.habits) >= 40


def test_every_template_fills_its_slots_and_appears_once():
    from string import Formatter

    from recipes import template_data
    slots = {"item", "name", "time", "deadline", "aspect", "strength", "fix", "doc"}
    seen = set()
    for label, templates in template_data.label_templates().items():
        assert len(templates) >= 100, label
        for template, issue in templates:
            assert {field for _, field, _, _ in Formatter().parse(template) if field} <= slots, template
            assert issue in (None, *template_data.slots().issues) and (issue is None) == (label not in CRITICAL_LABELS), template
            assert "the {item}" not in template.lower(), template
            assert template.lower() not in seen, f"{template!r} is listed twice"
            seen.add(template.lower())


def test_every_label_is_defined_against_its_nearest_neighbour():
    from recipes import template_data
    definitions = template_data.label_definitions()
    assert list(definitions) == list(LABELS) and len(template_data.read_yaml("labels.yaml")) == len(LABELS)
    for label, definition in definitions.items():
        assert definition["means"] and any(other in definition["not"] for other in LABELS if other != label), label


def test_a_suggestion_never_names_the_person_it_is_addressed_to():
    rng = random.Random(5)
    for _ in range(200):
        text = offline_fill.fill("Hey {name}, about {item}: {fix}.", rng, "the plan", "errors")
        addressed = text.split(",")[0].removeprefix("Hey ")
        assert text.count(addressed) == 1, text


def test_itemless_follow_ups_name_no_item_and_change_the_pairs():
    train_pools, _ = offline_fill.split_pools(0, 0.2)
    rng, item = random.Random(4), "the zorblat ledger"
    for label in CRITICAL_LABELS:
        assert all(item not in offline_pairs.follow_up(train_pools, rng, label, item, 1.0) for _ in range(30))
    # Without the share, follow-ups usually repeat the item, as they always did.
    named = sum(item in offline_pairs.follow_up(train_pools, rng, label, item, 0.0)
                for label in CRITICAL_LABELS for _ in range(30))
    assert named > 0.5 * 30 * len(CRITICAL_LABELS)
    plain = generate_offline.generate(num_per_label=5, num_pairs=60, validation_fraction=0.2, seed=3,
                                      itemless_share=0.0)
    shared = generate_offline.generate(num_per_label=5, num_pairs=60, validation_fraction=0.2, seed=3,
                                       itemless_share=0.7)
    assert plain["rewrite"] != shared["rewrite"]


def test_rewrites_keep_their_capitals():
    train_pools, _ = offline_fill.split_pools(0, 0.2)
    rng = random.Random(6)
    for _ in range(300):
        constructive = offline_pairs.work_pair(train_pools, rng, offline_pairs.ITEMLESS_SHARE)["constructive"]
        assert " i " not in f" {constructive} " and "i'd" not in constructive, constructive
        assert not any(f" {day.lower()}" in constructive for day in ("Monday", "Friday")), constructive


def test_a_template_file_row_with_a_missing_cell_is_an_error_naming_its_row(tmp_path):
    from recipes import template_data
    path = tmp_path / "threat.tsv"
    path.write_text("# a comment\ntemplate\tissue\n\nFix {item} or else.\tquality\nFix {item} now.\n")
    with pytest.raises(ValueError, match="row 3 has 1 cells"):
        template_data.read_tsv(path)


def test_no_rewrite_claims_a_time_delay_number_name_or_event_its_criticism_lacks(data):
    from takeoff.feedback.claims import introduced_claims
    train, validation = data["rewrite"]
    for row in train + validation:
        assert not introduced_claims(row["constructive"], row["negative"], row["context"]), row
    problems = {row.get("problem") for row in train}
    assert {"late", "errors", "quality", None} <= problems  # restated problems, and criticisms that name none


@pytest.mark.parametrize("negative, item, labels, problem", [
    ("Your report is late again.", "your report", ["Harsh Criticism"], "late"),
    ("The invoice is full of mistakes, honestly.", "the invoice", ["Harsh Criticism"], "errors"),
    ("The late shift rota is rubbish.", "the late shift rota", ["Harsh Criticism"], "quality"),
    ("You're an idiot, and the deck proves it.", "the deck", ["Personal Attack"], None),
    ("Sort out the deck or you're fired.", "the deck", ["Threat"], None),
])
def test_a_rewrite_restates_only_the_problem_its_criticism_names(negative, item, labels, problem):
    rng = random.Random(1)
    for _ in range(20):
        answer, restated = offline_pairs.constructive_answer(negative, item, labels, rng)
        assert restated == problem and item.lower() in answer.lower(), answer
        if problem is None:
            assert any(answer.endswith(offline_fill.fill(ask, rng, item)[1:]) for ask in offline_fill.PARTS.help), answer
        if problem != "late":
            rest = answer.lower().replace(item, "")
            assert not any(word in rest for word in ("late", "on time", "timeline", "slip")), answer


def test_no_constructive_side_is_garbled(data):
    from takeoff.feedback.fluency import garbles
    train, validation = data["rewrite"]
    for row in train + validation:
        assert not garbles(row["constructive"], row["negative"], row["context"]), row


def test_a_fault_is_restated_in_the_criticisms_words_and_its_parts_stay_on_one_side(data):
    from takeoff.feedback.keeps import keeps_problem
    train, validation = data["rewrite"]
    with_fault = [row for row in train if row.get("problem") == "fault"]
    assert 0.3 < len(with_fault) / sum(row["kind"] == "work" for row in train) < 0.7
    for row in with_fault:
        assert row["fault"] in row["negative"].lower() and row["fault"] in row["constructive"].lower(), row
        assert keeps_problem(row["negative"], row["constructive"], row["subject"]), row
    part = lambda fault: next(p for p in offline_fill.FAULTS.singular_parts + offline_fill.FAULTS.plural_parts  # noqa: E731
                              if fault.startswith(p + " "))
    train_parts = {part(row["fault"]) for row in with_fault}
    assert not train_parts & {part(row["fault"]) for row in validation if row.get("problem") == "fault"}


def test_a_criticism_with_nothing_to_name_is_answered_by_asking_what_would_help(data):
    from takeoff.feedback.keeps import content_words
    rows = [row for row in data["rewrite"][0] if row["kind"] == "no_subject"]
    assert rows
    for row in rows:
        assert not content_words(row["negative"]) and row["constructive"] in offline_fill.PARTS.no_subject, row
