"""Limits under Triton: a full reader is refused naming its limit, concurrent classifications
share engine steps, and a cancelled stream gives its slot back once its tokens are out (PyTriton
does not tell the callable about the cancel: docs/triton.md)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from scheduler.request import Task
from tests.runners import SlowRunner
from tests.triton.conftest import skip_where_pytriton_cannot_run, wait_until

skip_where_pytriton_cannot_run()
import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.triton.test_triton_models import TEXTS, http_text, stream  # noqa: E402

pytestmark = pytest.mark.triton
STEP_DELAY_S = 0.02  # a generator step; 60 tokens take about 1.2 s
CLASSIFY_DELAY_S = 0.3  # a classification step: long enough for a burst to queue behind it
LONG = {"max_new_tokens": 60, "min_new_tokens": 60}


class CountingRunner(SlowRunner):
    """The real runner, slow, counting how many classifications each step ran."""

    def __init__(self, runner, delay_s: float) -> None:
        super().__init__(runner, delay_s)
        self.classify_batches: list[int] = []

    def execute(self, scheduler_output, between_layers=None):
        if scheduler_output.one_pass:
            self.classify_batches.append(len(scheduler_output.one_pass))
        return super().execute(scheduler_output, between_layers)


@pytest.fixture(scope="module")
def triton(deploy):
    from takeoff.app import build_runner

    runners = {}

    def runner_factory(config, reader):
        delay = CLASSIFY_DELAY_S if reader.info.task is Task.CLASSIFY else STEP_DELAY_S
        runners[reader.info.task] = CountingRunner(build_runner(config, reader), delay)
        return runners[reader.info.task]

    deployment = deploy(runner_factory, max_num_seqs=1, max_queue=1)
    deployment.runners = runners
    return deployment


def open_stream(grpc_url: str, parameters: dict):
    """A gRPC stream with one generation sent; (client, queue of (result, error))."""
    import queue

    client = grpcclient.InferenceServerClient(grpc_url)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    tensor = grpcclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"a long one"], dtype=np.object_))
    client.async_stream_infer("primary", [tensor], parameters=parameters,
                              enable_empty_final_response=True)
    return client, answers


def test_a_full_reader_is_refused_naming_its_limit(triton):
    # One slot and one place in the queue: the third generation has no room.
    running = [open_stream(triton.grpc_url, LONG) for _ in range(2)]
    assert wait_until(lambda: triton.link.num_slots_in_use() == 1)
    with pytest.raises(InferenceServerException) as refused:
        stream(triton.grpc_url, [("one too many", {"max_new_tokens": 4})])
    message = str(refused.value)
    assert "429" in message and "consumer group 'primary' is full" in message
    assert "1 requests at once (--max-num-seqs)" in message
    assert "1 more wait (--max-queue)" in message
    for client, answers in running:  # both admitted ones run to their end
        result, error = answers.get(timeout=60)
        assert error is None
        client.stop_stream()


def test_concurrent_classifications_share_engine_steps(triton):
    runner = triton.runners[Task.CLASSIFY]
    runner.classify_batches.clear()
    client = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"),
                                              concurrency=8)
    go = threading.Barrier(8)

    def classify():
        go.wait()
        return client.infer("classifier", [http_text(TEXTS[:1])]).as_numpy("probabilities")

    threads, answers = [], []
    for _ in range(8):
        threads.append(threading.Thread(target=lambda: answers.append(classify())))
        threads[-1].start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 8 and all(np.allclose(a, answers[0]) for a in answers)
    # One behind another would be 8 steps; Triton batches those that wait for the first.
    assert sum(runner.classify_batches) == 8 and len(runner.classify_batches) <= 3


def test_a_cancelled_stream_gives_its_slot_back_once_its_tokens_are_out(triton):
    assert wait_until(lambda: triton.link.num_slots_in_use() == 0)
    client, answers = open_stream(triton.grpc_url, LONG)
    result, error = answers.get(timeout=30)
    assert error is None and result.as_numpy("text") is not None
    client.stop_stream(cancel_requests=True)
    cancelled_at = time.monotonic()
    assert triton.link.num_slots_in_use() == 1  # the engine never heard of the cancel
    # Bounded by its max_new_tokens (60 steps of at least STEP_DELAY_S each): then it is free.
    assert wait_until(lambda: triton.link.num_slots_in_use() == 0, timeout_s=60)
    assert time.monotonic() - cancelled_at < 60
    assert len(stream(triton.grpc_url, [("next", {"max_new_tokens": 6, "min_new_tokens": 6})])[0])
