"""Three ways to add each row's own LoRA update to one fused linear, timed on flan-t5-small's fields.

    python -m benchmarks.lora_linear [--threads 1] [--dtype float32,bfloat16] [--json PATH]

grouped (kernels/lora.py, for a prefill): for each adapter in the batch, its rows (a slice when
    consecutive, as in a prefill sorted by adapter; else gathered), down and up as two prepacked
    linears, added back into those rows.
stacked (kernels/lora.py, for a decoder step): every adapter's down stacked and their ups side by
    side, two prepacked linears over all rows, each row's foreign rank columns zeroed between.
gathered: the rows of all adapters gathered into one [adapters, rows, in] tensor, padded to the
    busiest adapter with a zero row, two batched matmuls over every adapter at once (Punica's
    and S-LoRA's shape of the problem) and one scatter-add back.

Passes: decoder steps of 64 and of 8 rows (4 adapters of rank 16 on every module, and base
rows, interleaved: every fifth row is the base's) and an encoder pass of 32 prompts of 48 tokens
(8 prompts per adapter, sorted). Each time is the lower quartile of thread CPU time over
repeats, less the base linear's own, so other work on a shared machine disturbs it less;
"alone = in batch" says whether every row's result is bit-identical when it runs alone (the
engine's batch independence).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kernels.devices import DTYPES
from kernels.linear import linear, prepacked
from kernels.lora import LoraContext, LoraLinear
from kernels.lora_adapter import FieldUpdate, ModuleUpdate

NUM_ADAPTERS, RANK = 4, 16
WAYS = ("grouped", "stacked", "gathered")
# field -> (modules in it, rows per module, in_features) in flan-t5-small
FIELDS = {"self_qkv": (3, 384, 512), "self_out": (1, 512, 384), "ff_in": (2, 1024, 512), "ff_out": (1, 512, 1024)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32,bfloat16")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with torch.inference_mode():
        for dtype in args.dtype.split(","):
            for field, shape in FIELDS.items():
                rows += measure_field(field, *shape, DTYPES[dtype.strip()])
    report = {"threads": args.threads, "load_average": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print(f"threads {args.threads}, load average {report['load_average']}")
    print(f"{'field':<10}{'dtype':<10}{'pass':<11}{'base ms':>9}" + "".join(f"{w + ' +ms':>14}" for w in WAYS)
          + "  alone = in batch (" + " / ".join(WAYS) + ")")
    for r in rows:
        print(f"{r['field']:<10}{r['dtype']:<10}{r['pass']:<11}{r['base_ms']:>9.3f}"
              + "".join(f"{r[w]['ms']:>14.3f}" for w in WAYS) + "  "
              + " / ".join(str(r[w]['alone_equals_batch']) for w in WAYS))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def measure_field(field: str, num_modules: int, width: int, in_features: int, dtype: torch.dtype) -> list[dict]:
    torch.manual_seed(0)
    base = prepacked((torch.randn(num_modules * width, in_features) * 0.02).to(dtype))
    downs = [(torch.randn(num_modules * RANK, in_features) * 0.02).to(dtype) for _ in range(NUM_ADAPTERS)]
    ups = [_block_diagonal(num_modules, width).to(dtype) for _ in range(NUM_ADAPTERS)]
    updates = {f"a{i}": FieldUpdate(d, tuple(ModuleUpdate((m * RANK, (m + 1) * RANK), (m * width, (m + 1) * width),
                                                         u[m * width:(m + 1) * width, m * RANK:(m + 1) * RANK])
                                            for m in range(num_modules)))
               for i, (d, u) in enumerate(zip(downs, ups))}
    index_of = {name: i for i, name in enumerate(updates)}
    context = LoraContext()
    layer, gathered = LoraLinear(base, updates, index_of, context), GatheredLora(base, downs, ups)
    ways = {"grouped": (layer, lambda ids, device: context.set(ids, device, index_of, stacked=False)),
            "stacked": (layer, lambda ids, device: context.set(ids, device, index_of, stacked=True)),
            "gathered": (gathered, gathered.set)}
    results = []
    for name, shape, lora_ids in (("decode 64", (64, in_features), [_interleaved(i) for i in range(64)]),
                                  ("decode 8", (8, in_features), [_interleaved(i) for i in range(8)]),
                                  ("encode", (32, 48, in_features), [f"a{i // 8}" for i in range(32)])):
        x = torch.randn(*shape).to(dtype)
        base_ms = _cpu_ms(lambda: linear(x, base))
        row = {"field": field, "dtype": str(dtype).removeprefix("torch."), "pass": name, "base_ms": round(base_ms, 3)}
        for way, (apply, set_rows) in ways.items():
            set_rows(lora_ids, x.device)
            row[way] = {"ms": round(_cpu_ms(lambda: apply(x)) - base_ms, 3),
                        "alone_equals_batch": _alone_equals_batch(apply, x, lora_ids, set_rows)}
        results.append(row)
    return results


def _interleaved(row: int) -> str | None:
    return None if row % 5 == NUM_ADAPTERS else f"a{row % 5}"


def _block_diagonal(num_modules: int, width: int) -> torch.Tensor:
    up = torch.zeros(num_modules * width, num_modules * RANK)  # [out, total rank]
    for m in range(num_modules):
        up[m * width:(m + 1) * width, m * RANK:(m + 1) * RANK] = torch.randn(width, RANK) * 0.02
    return up


class GatheredLora:
    """The batched alternative: every adapter's rows in one padded batch, two bmm, one scatter."""

    def __init__(self, base, downs: list[torch.Tensor], ups: list[torch.Tensor]):
        self.base = base
        self.downs = torch.stack([d.t() for d in downs])  # [adapters, in, rank]
        self.ups = torch.stack([u.t() for u in ups])  # [adapters, rank, out]

    def set(self, lora_ids: list[str | None], device=None) -> None:
        rows = [[i for i, name in enumerate(lora_ids) if name == f"a{a}"] for a in range(len(self.downs))]
        width = max(len(r) for r in rows)
        pad = len(lora_ids)  # the zero row appended to x
        self.index = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)  # [adapters, width]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = linear(x, self.base)
        num_adapters, width = self.index.shape
        if not width:
            return out
        padded = F.pad(x, (0, 0) * (x.dim() - 1) + (0, 1))  # [batch + 1, ..., in]
        picked = padded[self.index.flatten()].view(num_adapters, -1, x.shape[-1])  # [adapters, width * seq, in]
        delta = torch.bmm(torch.bmm(picked, self.downs), self.ups)  # [adapters, width * seq, out]
        grown = F.pad(out, (0, 0) * (out.dim() - 1) + (0, 1))
        grown.index_add_(0, self.index.flatten(), delta.view(num_adapters * width, *out.shape[1:]))
        return grown[:-1]


def _alone_equals_batch(layer, x: torch.Tensor, lora_ids: list, set_rows) -> bool:
    """Whether every adapter row's output is the same bits alone as in the whole batch."""
    set_rows(lora_ids, x.device)
    together = layer(x)
    for row, lora_id in enumerate(lora_ids):
        set_rows([lora_id], x.device)
        if not torch.equal(layer(x[row:row + 1])[0], together[row]):
            return False
    return True


def _cpu_ms(call, repeats: int = 40) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        call()
        times.append(time.thread_time() - start)
    return sorted(times)[repeats // 4] * 1e3


if __name__ == "__main__":
    main()
