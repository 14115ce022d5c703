"""The training loop both recipes share: seeded, linear warmup then linear decay to zero, bf16 autocast."""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def linear_schedule(optimizer: torch.optim.Optimizer, num_warmup: int, num_total: int):
    def factor(step: int) -> float:
        if step < num_warmup:
            return (step + 1) / num_warmup
        return max(0.0, (num_total - step) / max(1, num_total - num_warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batches(num_rows: int, batch_size: int, seed: int, lengths: Sequence | None = None,
            window: int = 64) -> list[list[int]]:
    """Shuffled batches of row indices. With `lengths`, rows of similar length share a batch (sorted
    within windows of `window` batches, then the batches shuffled), so less of each batch is padding."""
    rng = random.Random(seed)
    order = list(range(num_rows))
    rng.shuffle(order)
    if lengths is None:
        return [order[i:i + batch_size] for i in range(0, num_rows, batch_size)]
    plan = []
    for start in range(0, num_rows, batch_size * window):
        chunk = sorted(order[start:start + batch_size * window], key=lengths.__getitem__)
        plan += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(plan)
    return plan


def train(model: torch.nn.Module, loss_of: Callable[[list[int]], torch.Tensor], num_rows: int, *,
          num_epochs: float, batch_size: int, lr: float, seed: int, bf16: bool = True, lengths: Sequence | None = None,
          warmup_fraction: float = 0.06, weight_decay: float = 0.01, desc: str = "train",
          hooks: Sequence[tuple[int, Callable[[int], None]]] = ()) -> list[float]:
    """Run `num_epochs` (may be fractional) over row indices; `loss_of(indices)` is one batch's loss.

    `lengths` (one sortable key per row) groups rows of similar length into a batch. Each `(every, hook)`
    in `hooks` runs `hook(step)` in eval mode every `every` steps before the last. Returns every step's loss.
    """
    seed_everything(seed)
    steps_per_epoch = math.ceil(num_rows / batch_size)
    num_steps = max(1, round(num_epochs * steps_per_epoch))
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < num_steps:
        plan += batches(num_rows, batch_size, seed + epoch, lengths)
        epoch += 1
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    scheduler = linear_schedule(optimizer, max(1, int(num_steps * warmup_fraction)), num_steps)
    model.train()
    losses = []
    progress = tqdm(plan[:num_steps], desc=desc, mininterval=5)
    for indices in progress:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(indices)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
        due = [hook for every, hook in hooks if every and len(losses) % every == 0 and len(losses) < num_steps]
        if due:
            model.eval()
            for hook in due:
                hook(len(losses))
            model.train()
    model.eval()
    return losses


def save_tokenizer(tokenizer, out) -> None:
    """Save without the truncation and padding a fast tokenizer keeps from its last batched call
    (validation, generation): its tokenizer.json would otherwise record them as if they were settings."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(out)


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in rows])  # [batch, width]
