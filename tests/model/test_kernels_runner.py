"""What the engine builds on: the between-layers hook, prefills in any grouping, elastic cache."""
from __future__ import annotations

from transformers import T5ForConditionalGeneration

from kernels.loader import load_classifier, load_generator
from kernels.runner import ModelRunner
from scheduler.output import OnePassInput, PrefillInput, SchedulerOutput
from scheduler.sampling_params import SamplingParams
from tests.model.test_kernels_t5 import hf_greedy, prompts
from tests.tiny_models import CORPUS

NUM_NEW = 12


def drive(runner: ModelRunner, inputs: list[list[int]], groups: list[int], num_new: list[int] | None = None,
          hook=None, on_step=None) -> list[list[int]]:
    """Prefill the inputs in groups of the given sizes, one group per step, while the earlier
    ones decode; each sequence stops after its num_new tokens and is freed the step after."""
    num_new = num_new or [NUM_NEW] * len(inputs)
    pending, groups = list(enumerate(inputs)), list(groups)
    tokens: dict[int, list[int]] = {}
    done: set[int] = set()
    while pending or len(done) < len(inputs):
        size = groups.pop(0) if groups else 0
        group, pending = pending[:size], pending[size:]
        finished = [s for s, t in tokens.items() if len(t) == num_new[s] and s not in done]
        done.update(finished)
        running = [s for s, t in tokens.items() if len(t) < num_new[s]]
        prefill = [PrefillInput(str(i), i, ids, SamplingParams(max_new_tokens=num_new[i], min_new_tokens=num_new[i]))
                   for i, ids in group]
        out = runner.execute(SchedulerOutput(prefill=prefill, decode_slots=running, freed_slots=finished), hook)
        for request_id, token in out.next_token_ids.items():  # request i holds slot i
            tokens.setdefault(int(request_id), []).append(token)
        if on_step is not None:
            on_step(runner)
    return [tokens[i] for i in range(len(inputs))]


def test_prefills_in_any_grouping_give_hugging_face_tokens(tiny_t5_dir):
    generator = load_generator(tiny_t5_dir)
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()
    inputs = prompts(generator.tokenizer)
    expected = [hf_greedy(model, ids, NUM_NEW, min_new_tokens=NUM_NEW) for ids in inputs]
    for groups in ([10], [1] * 10, [3, 1, 4, 2]):
        runner = ModelRunner(generator, max_num_seqs=10, max_len=16, max_input_len=64)
        assert drive(runner, inputs, groups) == expected, groups


def test_between_layers_runs_after_every_layer_and_changes_nothing(tiny_t5_shape_dir, tiny_classifier_dir):
    path = tiny_t5_shape_dir("deep-decoder")  # 2 encoder layers, 4 decoder layers
    generator, classifier = load_generator(path), load_classifier(tiny_classifier_dir)
    w = generator.weights
    inputs = prompts(generator.tokenizer)[:4]
    runner = ModelRunner(generator, max_num_seqs=4, max_len=16, max_input_len=64)
    calls = []
    params = SamplingParams(max_new_tokens=NUM_NEW)
    runner.execute(SchedulerOutput(prefill=[PrefillInput("a", 0, inputs[0], params)]), lambda: calls.append(1))
    # encoder layers, the cache laid out for the first time (self and cross, a layer at a time),
    # each decoder layer's cross K/V, then the first decoder step's layers
    assert len(calls) == len(w.encoder) + 2 * len(w.decoder) + len(w.decoder) + len(w.decoder)
    before = len(calls)
    runner.execute(SchedulerOutput(decode_slots=[0]), lambda: calls.append(1))
    assert len(calls) == before + len(w.decoder)  # no new layout within a capacity step

    # A hook that classifies mid-step (the engine's classification lane) leaves the tokens alone.
    lane = ModelRunner(classifier=classifier)
    sentence = SchedulerOutput(one_pass=[OnePassInput("c", classifier.tokenizer(CORPUS[0])["input_ids"])])
    alone = lane.execute(sentence).probabilities["c"]
    answers = []
    hooked = drive(ModelRunner(generator, max_num_seqs=4, max_len=16, max_input_len=64), inputs, [2, 2],
                   hook=lambda: answers.append(lane.execute(sentence).probabilities["c"]))
    plain = drive(ModelRunner(generator, max_num_seqs=4, max_len=16, max_input_len=64), inputs, [2, 2])
    assert hooked == plain
    assert len(answers) > NUM_NEW * len(w.decoder) and all(a == alone for a in answers)


def test_cache_capacity_follows_the_longest_sequence(tiny_t5_dir):
    """A long input joins short ones, then leaves: the cross-attention capacity grows, then
    shrinks, and every sequence still gets Hugging Face's tokens."""
    generator = load_generator(tiny_t5_dir)
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir).eval()
    tokenizer = generator.tokenizer
    inputs = [tokenizer(text[:12])["input_ids"] for text in CORPUS[:3]]
    inputs.append(tokenizer(" ".join(CORPUS))["input_ids"][:60])
    num_new = [40, 40, 40, 3]
    runner = ModelRunner(generator, max_num_seqs=4, max_len=40, max_input_len=64)
    capacities = []
    outputs = drive(runner, inputs, [3, 1], num_new, on_step=lambda r: capacities.append(r.cache.cross_kv.capacity))
    assert capacities[0] < max(capacities) and capacities[-1] == capacities[0]
    assert runner.cache.self_kv.capacity >= 40
    assert outputs == [hf_greedy(model, ids, n, min_new_tokens=n) for ids, n in zip(inputs, num_new)]
