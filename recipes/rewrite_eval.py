"""The rewriter's half of `recipes.evaluate`: decode as the model's generation_config.json says, take
the n best and the app's pick among them (`takeoff.feedback.choose`), and measure the rewrites of
every set (`rewrite_checks`), the real development set through the app's own path.

Each set is reported twice: `<set>` is what the app shows (`choose_rewrite` over the n best, the
sentence itself where no candidate passes; `no_rewrite_share` says how often), `<set> best beam` the
plain best sequence.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from recipes.datasets import read_csv
from recipes.rewrite_checks import invented_claims, is_echo, rewrite_checks
from recipes.train_classifier import predict
from recipes.warm_start import is_uncased
from takeoff.feedback.choose import choose_rewrite
from takeoff.feedback.coach import REWRITE_SAMPLING, AnalyzedSentence, Feedback
from takeoff.feedback.sentences import split_sentences
from takeoff.feedback.task import LABELS, kind_of, rewrite_prompt, verdict
from takeoff.feedback.truecase import restore_case

HANDWRITTEN = Path(__file__).parent / "testset_handwritten.csv"
# Critical sentences written by hand after the test set, to choose between rewriter settings;
# unlike the test set it was looked at, so its figures are development figures.
DEVSET = Path(__file__).parent / "devset_handwritten.csv"
# Criticisms of several sentences, like the original work's example (its first row), written by hand with
# the subject a rewrite should name; a development set, looked at while choosing training data.
PARAGRAPHS = Path(__file__).parent / "paragraphs_handwritten.csv"
# The real development sets' files, read from the folder given with --real-dev (../shared).
REAL_DEV = ("real_feedback_dev.csv", "real_rewrite_dev.jsonl")
HANDWRITTEN_CONTEXT = "You are giving feedback to a colleague at work"
ORIGINAL_EXAMPLE = dict(
    context="You are a manager giving feedback to your subordinate, who has been underperforming severely "
            "over the past few months.",
    negative="Your performance over the past few months has been absolutely disappointing. It doesn't seem "
             "that you've put in any effort in improving your performance at all. I'm afraid that we will "
             "have to evaluate your position in this company if this continues.")


def decoding_of(model, **overrides) -> dict:
    """How the rewriter decodes: a beam search its generation_config.json sets, or else the app's
    (`coach.REWRITE_SAMPLING`), with the app's no-repeat block where the config sets none, and any
    `overrides` that are not None (to compare settings)."""
    config, app = model.generation_config, REWRITE_SAMPLING
    beams = (config.num_beams, config.length_penalty) if (config.num_beams or 1) > 1 else (app.num_beams, app.length_penalty)
    decoding = dict(num_beams=beams[0], length_penalty=beams[1],
                    no_repeat_ngram_size=config.no_repeat_ngram_size or app.no_repeat_ngram_size)
    decoding.update({k: v for k, v in overrides.items() if v is not None})
    if decoding["num_beams"] == 1:
        decoding.pop("length_penalty")  # only beam search uses it
    return decoding


@torch.no_grad()
def rewrite_candidates(model, tokenizer, rows: list[dict], num_return: int = 1, max_new_tokens: int = 80,
                       batch_size: int = 32, decoding: dict | None = None) -> list[list[str]]:
    """The `num_return` best rewrites of each row, best first (`decoding_of(model)` unless given; beam
    search with at least `num_return` beams); an uncased model's text is written as English again
    (`truecase.restore_case`)."""
    decoding = dict(decoding or decoding_of(model))
    if num_return > 1:
        decoding["num_beams"] = max(num_return, decoding["num_beams"])
        decoding.setdefault("length_penalty", model.generation_config.length_penalty)
    uncased = is_uncased(tokenizer)
    outputs = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        prompts = [rewrite_prompt(r["context"], r["negative"]) for r in batch]
        enc = tokenizer(prompts, truncation=True, max_length=256, padding=True, return_tensors="pt")
        ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             max_new_tokens=max_new_tokens, do_sample=False, num_return_sequences=num_return,
                             **decoding)
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)  # num_return per row, best first
        for i, r in enumerate(batch):
            row_texts = texts[i * num_return:(i + 1) * num_return]
            outputs.append([restore_case(t, r["negative"], r["context"]) if uncased else t for t in row_texts])
    return outputs


def rewrite(model, tokenizer, rows: list[dict], **kwargs) -> list[str]:
    """The best rewrite of each row (see `rewrite_candidates`)."""
    return [texts[0] for texts in rewrite_candidates(model, tokenizer, rows, **kwargs)]


def app_picks(rows: list[dict], candidates: list[list[str]], classifier, cls_tokenizer) -> list[str]:
    """What the app shows of each row's candidates (`choose.choose_rewrite`, the candidates the classifier
    reads as critical passed over; the subject guessed, as the app has none); "" where none passes."""
    texts = sorted({t.strip() for row in candidates for t in row if t.strip()})
    kinds = [verdict(p, LABELS).kind for p in predict(classifier, cls_tokenizer, texts)] if texts else []
    critical = {t for t, kind in zip(texts, kinds) if kind == "critical"}
    return [choose_rewrite(row, r["negative"], r["context"], critical=critical)[0] or ""
            for r, row in zip(rows, candidates)]


def rewrite_set_figures(rows: list[dict], outputs: list[str], labels: list[str], with_text: bool) -> dict:
    n, checks = len(rows), rewrite_checks(rows, outputs)
    figures = dict(
        num_inputs=n, constructive_share=round(sum(kind_of(l) == "constructive" for l in labels) / n, 4),
        num_echoes=sum(is_echo(r["negative"], o) for r, o in zip(rows, outputs)),
        keep_subject_share=round(sum(checks["keep"]) / n, 4), keep_problem_share=round(sum(checks["problem"]) / n, 4),
        garbled_share=round(sum(checks["garbled"]) / n, 4), broken_word_share=round(sum(checks["broken"]) / n, 4),
        stutter_share=round(sum(checks["stutter"]) / n, 4), invented_claim_share=round(sum(checks["invented"]) / n, 4),
        num_distinct_outputs=len(set(outputs)))
    if "subject" in rows[0]:
        figures["names_subject_share"] = round(sum(r["subject"].lower() in o.lower() for r, o in zip(rows, outputs)) / n, 4)
    if with_text:
        figures["samples"] = [dict(input=r["negative"], rewrite=o, label=l) for r, o, l in list(zip(rows, outputs, labels))[:8]]
        figures["invented_claim_examples"] = [dict(input=r["negative"], rewrite=o, claims=invented_claims(r, o))
                                              for r, o in zip(rows, outputs) if invented_claims(r, o)][:6]
    return figures


def app_inputs(classifier, cls_tokenizer, rows: list[dict]) -> tuple[list[Feedback], list[tuple[int, int]]]:
    """Each row read as /v1/feedback/improve reads it (every sentence by `verdict`), and the (row,
    sentence) pairs the app rewrites (`Feedback.needs_rewrite`)."""
    split = [split_sentences(r["negative"]) for r in rows]
    probabilities = iter(predict(classifier, cls_tokenizer, [s.text for sentences in split for s in sentences]))
    feedbacks = []
    for row, sentences in zip(rows, split):
        readings = [verdict(next(probabilities), LABELS) for _ in sentences]
        feedbacks.append(Feedback(row["negative"], row["context"], [
            AnalyzedSentence(s.text, s.start, s.end, v.label, v.score, v.kind, v.unsure) for s, v in zip(sentences, readings)]))
    todo = [(i, j) for i, f in enumerate(feedbacks) for j in range(len(f.sentences)) if f.needs_rewrite(j)]
    return feedbacks, todo


def improved_texts(feedbacks: list[Feedback], rewritten: dict[tuple[int, int], str]) -> list[str]:
    """Each row's text with its rewritten sentences in place (an empty rewrite keeps the sentence) and
    the separators kept, as the app joins them."""
    return ["".join(f.separator_before(j) + (rewritten.get((i, j)) or s.text) for j, s in enumerate(f.sentences))
            for i, f in enumerate(feedbacks)]


def rewriter_figures(generator, gen_tokenizer, classifier, cls_tokenizer, data_dir: Path, num_rows: int,
                     real_dev: Path | None = None, decoding: dict | None = None, only: tuple[str, ...] = (),
                     num_candidates: int = 1) -> dict:
    def critical_inputs(path: Path) -> list[dict]:
        return [dict(context=HANDWRITTEN_CONTEXT, negative=r["sentence"])
                for r in read_csv(path) if kind_of(r["label"]) == "critical"]
    sets = {"validation": read_csv(data_dir / "rewrite" / "validation.csv")[:num_rows],
            "handwritten": critical_inputs(HANDWRITTEN), "development": critical_inputs(DEVSET),
            "paragraphs": read_csv(PARAGRAPHS)}
    sets = {name: rows for name, rows in sets.items() if not only or name in only}
    figures = {}

    def judged(outputs: list[str]) -> list[str]:
        return [LABELS[max(range(len(LABELS)), key=p.__getitem__)] for p in predict(classifier, cls_tokenizer, outputs)]

    def both(name: str, rows: list[dict], candidates: list[list[str]], finish) -> None:
        """Figures of the app's pick as `name` ("" where it shows none), and of the best beam beside it."""
        picks = app_picks(rows, candidates, classifier, cls_tokenizer)
        ways = {name: picks, f"{name} best beam": [texts[0] for texts in candidates]}
        for way, outputs in ways.items():
            figures[way] = dict(finish(outputs), no_rewrite_share=round(sum(not o for o in outputs) / len(rows), 4))

    def shown(rows: list[dict], outputs: list[str]) -> list[str]:
        return [o or r["negative"] for r, o in zip(rows, outputs)]  # no rewrite: the sentence stays
    for name, rows in sets.items():
        both(name, rows, rewrite_candidates(generator, gen_tokenizer, rows, num_candidates, decoding=decoding),
             lambda outputs, rows=rows: rewrite_set_figures(rows, shown(rows, outputs), judged(shown(rows, outputs)),
                                                            with_text=True))
    if real_dev:
        lines = (real_dev / REAL_DEV[1]).read_text(encoding="utf-8").splitlines()
        rows = [dict(context=r["context"], negative=r["feedback"], subject=r["subject"]) for r in map(json.loads, lines) if r]
        feedbacks, todo = app_inputs(classifier, cls_tokenizer, rows)
        inputs = [dict(context=feedbacks[i].prompt_context, negative=feedbacks[i].sentences[j].text) for i, j in todo]

        def finish(outputs: list[str]) -> dict:
            rewritten = {key: o.strip() for key, o in zip(todo, outputs) if o.strip()}
            texts = improved_texts(feedbacks, rewritten)
            unchanged = sum(not any(i == k for k, _ in rewritten) for i in range(len(rows)))
            return dict(rewrite_set_figures(rows, texts, judged(texts), with_text=False),
                        left_unchanged_share=round(unchanged / len(rows), 4))
        both("real_dev", inputs, rewrite_candidates(generator, gen_tokenizer, inputs, num_candidates, decoding=decoding),
             finish)
    example = rewrite(generator, gen_tokenizer, [ORIGINAL_EXAMPLE], decoding=decoding)[0]
    figures["original_example"] = dict(ORIGINAL_EXAMPLE, rewrite=example)
    return figures


SHARES = ("constructive_share", "keep_subject_share", "keep_problem_share", "garbled_share", "invented_claim_share",
          "names_subject_share", "left_unchanged_share", "no_rewrite_share", "broken_word_share", "stutter_share")


def print_rewrite_table(figures: dict) -> None:
    """One line per set: the shares the rewriter's targets are about."""
    print("set".ljust(24) + "".join(name.removesuffix("_share")[:12].rjust(13) for name in SHARES))
    for name, row in figures.items():
        if isinstance(row, dict) and "num_inputs" in row:
            print(name.ljust(24) + "".join(str(row.get(k, "")).rjust(13) for k in SHARES))
