"""The pieces of the training recipes: tokenizer building, MiniLM → ELECTRA mapping, the loop."""
from __future__ import annotations

import random

import torch
from transformers import AutoTokenizer, BertModel, T5ForConditionalGeneration

from recipes import train_classifier, train_rewriter
from recipes.training import train
from takeoff.feedback.task import LABELS

PAIRS = [dict(context="You manage a cook at a restaurant", negative=f"The {w} menu is a disaster.",
              constructive=f"The {w} menu has promise; could you test it with the team first?")
         for w in ("lunch", "dinner", "brunch", "dessert", "tasting", "kids", "vegan", "summer")]


def test_tokenizer_is_a_t5_tokenizer_of_the_asked_size(tmp_path):
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == 700 and reloaded.eos_token_id == 1 and reloaded.pad_token_id == 0
    ids = reloaded("The vegan menu is a disaster.")["input_ids"]
    assert reloaded.decode(ids, skip_special_tokens=True) == "The vegan menu is a disaster."
    assert ids == tokenizer("The vegan menu is a disaster.")["input_ids"]


def test_tokenizer_ignores_an_older_tokenizer_in_the_output_folder(tmp_path):
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=650, num_common_words=500)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == len(reloaded) == 650
    assert reloaded("The dessert menu.")["input_ids"] == tokenizer("The dessert menu.")["input_ids"]


def test_minilm_weights_land_unchanged_in_electra():
    source = train_classifier.minilm_dir()
    electra = train_classifier.electra_from_minilm(source).eval()
    bert = BertModel.from_pretrained(source, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    enc = tokenizer(["The sprint demo was late again."], return_tensors="pt")
    with torch.no_grad():
        expected = bert(**enc).last_hidden_state
        actual = electra.electra(**enc).last_hidden_state
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
    assert electra.config.id2label == dict(enumerate(LABELS))


def test_the_loop_fits_a_few_pairs(tmp_path):
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    model = train_rewriter.small_t5(len(tokenizer), d_model=64, num_layers=1)
    inputs, targets = train_rewriter.encode_pairs(tokenizer, PAIRS, 64, 64)
    before = train_rewriter.validation_loss(model.eval(), inputs, targets)
    losses = train(model, lambda idx: train_rewriter.seq2seq_loss(model, inputs, targets, idx), len(PAIRS),
                   num_epochs=40, batch_size=4, lr=3e-3, seed=0, bf16=False)
    after = train_rewriter.validation_loss(model, inputs, targets)
    assert len(losses) == 80 and after < before / 2

    # Saved in fp16 with the tied embedding matrix stored once; loading ties it back.
    train_rewriter.save(model, tokenizer, tmp_path / "saved", dict(step=80))
    from safetensors import safe_open
    with safe_open(tmp_path / "saved" / "model.safetensors", "pt") as f:
        assert sum(f.get_slice(k).get_shape() == [700, 64] for k in f.keys()) == 1
    loaded = T5ForConditionalGeneration.from_pretrained(tmp_path / "saved", dtype=torch.float32)
    assert loaded.lm_head.weight.data_ptr() == loaded.shared.weight.data_ptr()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name].half().float()), name


def test_token_dropout_keeps_the_special_tokens_and_never_empties_a_sentence():
    row = [101, 7, 8, 9, 10, 11, 102]
    rng = random.Random(0)
    dropped = [train_classifier.drop_tokens(row, 0.5, rng) for _ in range(200)]
    assert all(d[0] == 101 and d[-1] == 102 and len(d) >= 3 for d in dropped)
    assert all(set(d[1:-1]) <= set(row[1:-1]) for d in dropped)
    lengths = [len(d) - 2 for d in dropped]
    assert 1.5 < sum(lengths) / len(lengths) < 3.5   # about half of the five inner tokens survive
    assert train_classifier.drop_tokens(row, 0.0, rng) == row
    assert train_classifier.drop_tokens(row, 1.0, rng) == [101, 7, 102]


def test_copy_rows_are_short_runs_of_common_words_and_repeat_with_the_seed(tmp_path):
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    rows = train_rewriter.copy_rows(tokenizer, 50, seed=1, num_words=600)
    assert rows == train_rewriter.copy_rows(tokenizer, 50, seed=1, num_words=600)
    assert rows != train_rewriter.copy_rows(tokenizer, 50, seed=2, num_words=600)
    for ids in rows:
        words = tokenizer.decode(ids, skip_special_tokens=True).split()
        assert ids[-1] == tokenizer.eos_token_id and 1 <= len(words) <= 5
        assert all(word.isalpha() for word in words)


def test_length_grouped_batches_cover_every_row_once_and_pad_less():
    from recipes.training import batches
    lengths = [random.Random(i).randint(1, 60) for i in range(1000)]
    grouped, plain = batches(1000, 16, seed=3, lengths=lengths), batches(1000, 16, seed=3)
    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert grouped == batches(1000, 16, seed=3, lengths=lengths) != batches(1000, 16, seed=4, lengths=lengths)

    def padded(plan):
        return sum(len(b) * max(lengths[i] for i in b) for b in plan)
    assert padded(grouped) < 0.8 * padded(plain)
    # The batches are shuffled, not handed out shortest first.
    firsts = [max(lengths[i] for i in b) for b in grouped[:10]]
    assert firsts != sorted(firsts)


def test_the_picker_keeps_the_weights_that_rewrote_cleanest(tmp_path, monkeypatch):
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    model = train_rewriter.small_t5(len(tokenizer), d_model=64, num_layers=1)
    rows = PAIRS[:2]
    # Rewrites as three checkpoints might write them: a stutter, clean, and the subject lost.
    scripted = iter([["The lunch menu by the end of the end of the week.", "The dinner menu has promise."],
                     ["The lunch menu has promise.", "The dinner menu has promise."],
                     ["Could you test it first?", "Could you test it first?"]])
    monkeypatch.setattr(train_rewriter, "rewrite", lambda model, tokenizer, rows: next(scripted))
    picker = train_rewriter.BestCheckpoint(model, tokenizer, rows)
    weights = []
    for step in (0, 10, 20):
        with torch.no_grad():
            model.shared.weight.fill_(float(step))
        weights.append(model.state_dict()["lm_head.weight"].clone())
        picker(step)
    summary = picker.restore()
    assert summary["picked_step"] == 10
    assert [c["clean"] for c in summary["checkpoints"]] == [0.5, 1.0, 0.0]
    assert [c["stutter"] for c in summary["checkpoints"]] == [0.5, 0.0, 0.0]
    assert torch.equal(model.lm_head.weight, weights[1]) and model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()


def test_bert2bert_starts_from_minilm_and_reloads_as_saved(tmp_path):
    from transformers import AutoModelForSeq2SeqLM, GenerationConfig

    from recipes import warm_start
    tokenizer, model = warm_start.bert2bert_from_minilm()
    bert = BertModel.from_pretrained(warm_start.minilm_dir(), add_pooling_layer=False)
    for name, weight in bert.state_dict().items():
        if name.startswith("encoder.layer.0.attention") or name.startswith("embeddings.word"):
            torch.testing.assert_close(model.encoder.state_dict()[name], weight)
            torch.testing.assert_close(model.decoder.bert.state_dict()[name], weight)  # a copy, cross-attention new
    assert "crossattention" in " ".join(n for n, _ in model.decoder.named_parameters())
    train_rewriter.save(model, tokenizer, tmp_path, dict(family="bert2bert"))
    config = GenerationConfig.from_pretrained(tmp_path)
    assert (config.decoder_start_token_id, config.eos_token_id, config.pad_token_id) == (
        tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    enc = tokenizer(["The sprint demo was late again."], return_tensors="pt")
    labels = tokenizer(["thanks for the sprint demo."], return_tensors="pt")["input_ids"][:, 1:]
    with torch.no_grad():
        expected = model.eval()(**enc, labels=labels).logits
        actual = reloaded(**enc, labels=labels).logits
    torch.testing.assert_close(actual, expected, atol=0.05, rtol=0.05)  # saved in fp16


def test_bert2bert_targets_do_not_start_with_the_decoder_start_token():
    from recipes import warm_start
    tokenizer, _ = warm_start.bert2bert_from_minilm()
    _, targets = train_rewriter.encode_pairs(tokenizer, PAIRS[:2], 64, 64)
    assert targets[0][0] != tokenizer.cls_token_id and targets[0][-1] == tokenizer.sep_token_id


def test_evaluation_decodes_as_the_saved_generation_config_says(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from recipes.rewrite_eval import decoding_of
    texts = [p["negative"] + " " + p["constructive"] for p in PAIRS] * 5
    tokenizer = train_rewriter.build_tokenizer(texts, tmp_path, vocab_size=700, num_common_words=600)
    model = train_rewriter.small_t5(len(tokenizer), d_model=64, num_layers=1)
    # A model whose config says nothing decodes as the app does: 4 beams, no repeated 4-token run.
    assert decoding_of(model) == dict(num_beams=4, no_repeat_ngram_size=4, length_penalty=1.0)
    model.generation_config.update(num_beams=4, no_repeat_ngram_size=4, length_penalty=0.8)
    train_rewriter.save(model, tokenizer, tmp_path, {})
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert decoding_of(reloaded) == dict(num_beams=4, no_repeat_ngram_size=4, length_penalty=0.8)
    assert decoding_of(reloaded, num_beams=1, length_penalty=None) == dict(num_beams=1, no_repeat_ngram_size=4)


def test_kind_loss_counts_a_wrong_label_of_the_right_kind_as_right():
    from takeoff.feedback.task import kind_of
    critical = [i for i, label in enumerate(LABELS) if kind_of(label) == "critical"]
    constructive = [i for i, label in enumerate(LABELS) if kind_of(label) != "critical"]
    # All the mass on another critical label: the kind is right, so the kind loss is near 0 ...
    logits = torch.full((1, len(LABELS)), -20.0)
    logits[0, critical[1]] = 20.0
    target = torch.tensor([critical[0]])
    assert train_classifier.kind_loss(logits, target) < 1e-3
    # ... and all of it on a constructive label is the wrong kind, a large loss.
    logits = torch.full((1, len(LABELS)), -20.0)
    logits[0, constructive[0]] = 20.0
    assert train_classifier.kind_loss(logits, target) > 10
