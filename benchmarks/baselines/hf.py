"""Baseline "what you would write yourself": Hugging Face `generate` behind Starlette, with
dynamic batching (benchmarks.baselines.batching).

    python -m benchmarks.baselines.hf --model DIR [--classifier DIR] --port 3100 \\
        [--max-batch-size 32] [--max-wait-ms 10] [--threads 2]

A batch pads its inputs and runs one greedy `model.generate` for the longest max_new_tokens in
it; each answer is cut to its own length and after its EOS. A per-row logits processor keeps
each request's min_new_tokens its own. No streaming (see benchmarks.baselines.server): an answer
leaves when its batch has finished. /classify pads a batch of sentences through the classifier.
"""
from __future__ import annotations

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, LogitsProcessor,
                          LogitsProcessorList, T5ForConditionalGeneration)

from benchmarks.baselines.server import (GenerationInput, GenerationOutput, build_app,
                                         output_from_ids, build_parser, run_in_worker,
                                         serve)


class MinNewTokensPerRow(LogitsProcessor):
    """EOS stays out of reach until each row has its own min_new_tokens (generate's
    min_new_tokens applies one value to the whole batch)."""

    def __init__(self, min_new_tokens: list[int], eos_token_id: int) -> None:
        self.min_new_tokens = torch.tensor(min_new_tokens)
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        num_generated = input_ids.shape[1] - 1  # after the decoder start token
        too_short = (self.min_new_tokens > num_generated).to(scores.device)  # [batch]
        scores[too_short, self.eos_token_id] = float("-inf")
        return scores


class HFGenerator:
    def __init__(self, model_dir: str, device: str = "cpu", dtype: str = "float32") -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = T5ForConditionalGeneration.from_pretrained(
            model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.eos_token_id = self.model.generation_config.eos_token_id

    def generate(self, items: list[GenerationInput]) -> list[GenerationOutput]:
        encoded = self.tokenizer([i.text for i in items], padding=True, return_tensors="pt")
        encoded = encoded.to(self.model.device)
        minimum = MinNewTokensPerRow([i.min_new_tokens for i in items], self.eos_token_id)
        with torch.inference_mode():
            rows = self.model.generate(**encoded, do_sample=False, num_beams=1,
                                       max_new_tokens=max(i.max_new_tokens for i in items),
                                       logits_processor=LogitsProcessorList([minimum]))
        input_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        return [output_from_ids(item, row[1:], num_input, self.eos_token_id, self._decode)
                for item, row, num_input in zip(items, rows.tolist(), input_tokens)]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class HFClassifier:
    def __init__(self, model_dir: str, device: str = "cpu", dtype: str = "float32") -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def classify(self, texts: list[str]) -> list[list[float]]:
        encoded = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**encoded.to(self.model.device)).logits
        return torch.softmax(logits.float(), dim=-1).tolist()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(__doc__)
    parser.add_argument("--classifier", help="Hugging Face sequence-classifier directory")
    args = parser.parse_args(argv)
    if not (args.model or args.classifier):
        parser.error("give --model, --classifier or both")
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = HFGenerator(args.model, args.device, args.dtype) if args.model else None
    classifier = HFClassifier(args.classifier, args.device, args.dtype) if args.classifier else None
    app = build_app(run_in_worker(generator.generate) if generator else None,
                    run_in_worker(classifier.classify) if classifier else None,
                    classifier.labels if classifier else None,
                    max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms)
    serve(app, args)


if __name__ == "__main__":
    main()
