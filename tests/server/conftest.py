"""A real server on a free port: uvicorn in a background thread, serving the tiny random models.

`server_factory(**config_overrides)` starts one per distinct set of overrides (and reuses it for
the rest of the session); `server_url` is the default one. Thread servers share this process, so
each has its own metrics registry and engine.
"""
from __future__ import annotations

import socket
import threading
import time

import aiohttp
import pytest
import uvicorn

from takeoff.app import create_app
from takeoff.config import ServerConfig
from takeoff.serve import uvicorn_config
from tests.feedback_models import save_feedback_classifier

# Small limits keep the tiny servers quick; tests that need others pass overrides.
# (port is unused: the server gets an already bound socket; float32 because the tests compare
# with Hugging Face in float32, and `auto` is bfloat16 on a CPU with AVX512-BF16 or AMX)
TEST_DEFAULTS = dict(host="127.0.0.1", port=1, max_num_seqs=8, max_new_tokens=256,
                     max_queue=64, log_level="warning", dtype="float32")
START_TIMEOUT_S = 60


def bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class ThreadServer:
    """`sockets`: already bound listening sockets, the main API's first (default: one on a free
    port, serving everything)."""

    def __init__(self, config: ServerConfig, sockets: list[socket.socket] | None = None,
                 **app_options) -> None:
        self.app = create_app(config, **app_options)
        self.sockets = sockets or [bound_socket()]
        self.socket = self.sockets[0]
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn_config(self.app, config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": self.sockets},
                                       daemon=True, name=f"uvicorn {self.url}")

    def start(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server at {self.url} did not start")
            time.sleep(0.02)
        return self

    @property
    def engine(self):
        return self.app.state.engine

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
async def http():
    """An HTTP client session for one test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
def server_factory(tiny_t5_dir, tiny_classifier_dir):
    """Call with ServerConfig overrides (model=None for a classifier-only server, api_key=...);
    returns the base URL. Servers with the same overrides are shared within the session."""
    servers: dict[tuple, ThreadServer] = {}

    def start(**overrides) -> str:
        return start_server(**overrides).url

    def start_server(**overrides) -> ThreadServer:
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        if key not in servers:
            options = dict(TEST_DEFAULTS, model=str(tiny_t5_dir),
                           classifier=str(tiny_classifier_dir))
            options.update(overrides)
            runner_factory = options.pop("runner_factory", None)
            app_options = {"runner_factory": runner_factory} if runner_factory else {}
            servers[key] = ThreadServer(ServerConfig(**options), **app_options).start()
        return servers[key]

    start.server = start_server
    yield start
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def server_url(server_factory) -> str:
    return server_factory()


@pytest.fixture(scope="session")
def learned_classifier(tmp_path_factory) -> str:
    """A classifier that knows tests.feedback_models.LEARNED by heart, so both kinds of feedback
    occur in one text."""
    return str(save_feedback_classifier(tmp_path_factory.mktemp("feedback-classifier")))


# LoRA adapters of the tiny T5 (tiny_t5_dir): ranks, targets (a list, a regular expression) and
# scalings (one rsLoRA) that differ; PEFT's B weights made non-zero so that each one changes text.
LORAS = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q", "v"]),
    "all-rslora": dict(r=8, lora_alpha=16, use_rslora=True,
                       target_modules=["q", "k", "v", "o", "wi_0", "wi_1", "wo"]),
    "ff-regex": dict(r=2, lora_alpha=4, target_modules=r".*decoder.*DenseReluDense\.(wi_1|wo)"),
}


@pytest.fixture(scope="session")
def lora_dirs(tiny_t5_dir, tmp_path_factory) -> dict[str, str]:
    """name -> directory of each adapter of LORAS, saved by PEFT."""
    from benchmarks.models import save_random_lora

    root = tmp_path_factory.mktemp("loras")
    return {name: str(save_random_lora(tiny_t5_dir, root / name, seed=i, b_scale=0.3, **options))
            for i, (name, options) in enumerate(LORAS.items())}


@pytest.fixture(scope="session")
def peft_greedy(tiny_t5_dir, lora_dirs):
    """peft_greedy(text, max_new_tokens, lora=None, **generate_options): the text of PEFT's
    model for that adapter (`PeftModel.from_pretrained(base, dir).generate`), or of the base;
    greedy unless the options say num_beams (the best sequence of a beam search)."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    models = {}

    def generate(text: str, max_new_tokens: int, lora: str | None = None, **options) -> str:
        if lora not in models:
            base = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir)
            model = PeftModel.from_pretrained(base, lora_dirs[lora]) if lora else base
            models[lora] = model.eval()
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = models[lora].generate(input_ids=ids, do_sample=False, max_new_tokens=max_new_tokens,
                                        **{"num_beams": 1, **options})
        return tokenizer.decode(out[0], skip_special_tokens=True)

    return generate


@pytest.fixture(scope="session")
def lora_server(server_factory, lora_dirs):
    """A slow-stepping server (tests.runners.SlowRunner, so concurrent requests share steps) with
    the adapters qv and all-rslora on its generator, given with --lora."""
    from tests.runners import slow_runner

    return server_factory.server(runner_factory=slow_runner, lora=tuple(
        f"{name}={lora_dirs[name]}" for name in ("qv", "all-rslora")))
