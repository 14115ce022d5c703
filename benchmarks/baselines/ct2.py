"""Baseline: CTranslate2, the fastest T5 engine on CPU, behind the same Starlette server and
dynamic batching as the Hugging Face baseline.

    python -m benchmarks.baselines.ct2 --model DIR --port 3101 \\
        [--max-batch-size 32] [--max-wait-ms 10] [--threads 2] [--ct2-dir DIR]

The Hugging Face T5 directory is converted at start-up (into --ct2-dir, or a temporary folder).
A batch goes to `translate_batch(asynchronous=True)`, greedy, for the longest max_new_tokens in
it; each answer is cut to its own length and after its EOS. CTranslate2 takes one
min_decoding_length per call: a batch uses the smallest min_new_tokens in it, so a request asking
for more may end early on EOS. Generation only (no /classify); no streaming (see
benchmarks.baselines.server).
"""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import ctranslate2
from transformers import AutoTokenizer

from benchmarks.baselines.server import (GenerationInput, GenerationOutput, build_app,
                                         output_from_ids, build_parser, serve)

COMPUTE_TYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class CT2Generator:
    def __init__(self, model_dir: str, ct2_dir: Path, device: str = "cpu",
                 dtype: str = "float32", threads: int | None = None) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.eos_token_id = self.tokenizer.eos_token_id
        if not (ct2_dir / "model.bin").exists():
            ctranslate2.converters.TransformersConverter(model_dir).convert(
                str(ct2_dir), quantization=COMPUTE_TYPES[dtype], force=True)
        # One batch at a time (inter_threads 1), as the Hugging Face baseline runs them.
        self.translator = ctranslate2.Translator(str(ct2_dir), device=device,
                                                 compute_type=COMPUTE_TYPES[dtype],
                                                 inter_threads=1, intra_threads=threads or 0)

    async def generate(self, items: list[GenerationInput]) -> list[GenerationOutput]:
        inputs = [self.tokenizer(i.text)["input_ids"] for i in items]
        pending = self.translator.translate_batch(
            [self.tokenizer.convert_ids_to_tokens(ids) for ids in inputs], asynchronous=True,
            beam_size=1, return_end_token=True,
            max_decoding_length=max(i.max_new_tokens for i in items),
            min_decoding_length=min(i.min_new_tokens for i in items))
        # The translation runs on CTranslate2's own thread; this one only waits for it.
        results = await asyncio.to_thread(lambda: [p.result() for p in pending])
        return [output_from_ids(item, self.tokenizer.convert_tokens_to_ids(r.hypotheses[0]),
                                len(ids), self.eos_token_id, self._decode)
                for item, ids, r in zip(items, inputs, results)]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(__doc__)
    parser.add_argument("--ct2-dir", help="keep the converted model here (default: a temporary "
                                          "folder)")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required")
    with tempfile.TemporaryDirectory() as tmp:
        ct2_dir = Path(args.ct2_dir or Path(tmp) / "ct2")
        generator = CT2Generator(args.model, ct2_dir, args.device, args.dtype, args.threads)
        app = build_app(generator.generate, max_batch_size=args.max_batch_size,
                        max_wait_ms=args.max_wait_ms)
        serve(app, args)


if __name__ == "__main__":
    main()
