"""Generate both datasets with any OpenAI-compatible chat endpoint (this project's own server too).

    python -m recipes.generate_llm --base-url http://localhost:3000/v1 --api-key KEY --model gpt-4o-mini \
        --out data/llm

Two prompts, as in the original work: per label, "give N examples of <label> feedback" as a JSON
list; and pairs of {Context, Negative Feedback, Constructive Feedback}, each request steered to a
different workplace so that no context dominates. Malformed JSON is retried, then skipped and
counted. Duplicates are dropped; classification is split by request batch, pairs by workplace.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
from pathlib import Path

import aiohttp
from tqdm import tqdm

from recipes.datasets import clean_text, dedupe, distribution, shuffled, split_by_group, write_split
from recipes import template_data
from takeoff.feedback.task import LABELS, kind_of

PREAMBLE = ("You run a workshop on giving feedback at work. Critical feedback is vague, accusatory or harsh and "
            "is aimed at the person more than the work, with nothing to act on. Constructive feedback is kind, "
            "specific about the work, and suggests a clear next step.")
LABEL_PROMPT = (PREAMBLE + " Write {n} different sentences of {kind} feedback of the kind '{label}', each from "
                "a different workplace and about a different piece of work, varied in length and wording. "
                'Answer with a JSON list of strings only, like ["...", "..."].')
PAIR_PROMPT = (PREAMBLE + " Write {n} pairs set at {workplace}. For each, give the situation, a negative piece "
               "of feedback about one specific piece of work, and a constructive version that talks about the "
               "same piece of work and suggests a next step. Answer with a JSON list only, like "
               '[{{"Context": "You are a ... giving feedback to ... on ...", "Negative Feedback": "...", '
               '"Constructive Feedback": "..."}}].')
PAIR_KEYS = {"context": "context", "negativefeedback": "negative", "constructivefeedback": "constructive"}


def parse_json_list(text: str) -> list:
    """The first JSON list in a reply, code fences and chatter around it ignored."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise ValueError("no JSON list in the reply")
    value = json.loads(text[start:end + 1])
    if not isinstance(value, list):
        raise ValueError("reply is not a JSON list")
    return value


def pair_row(item) -> dict | None:
    if not isinstance(item, dict):
        return None
    row = {PAIR_KEYS.get(re.sub(r"[^a-z]", "", k.lower())): clean_text(v) for k, v in item.items()}
    return row if all(row.get(c) for c in ("context", "negative", "constructive")) else None


class Client:
    """Chat completions with retries; counts the replies it had to give up on."""

    def __init__(self, session: aiohttp.ClientSession, args):
        self.session, self.args = session, args
        self.semaphore = asyncio.Semaphore(args.concurrency)
        self.num_skipped = 0

    async def ask_list(self, prompt: str) -> list:
        body = dict(model=self.args.model, messages=[{"role": "user", "content": prompt}],
                    temperature=self.args.temperature, max_tokens=self.args.max_tokens)
        headers = {"Authorization": f"Bearer {self.args.api_key}"} if self.args.api_key else {}
        for _ in range(self.args.max_retries + 1):
            try:
                async with self.semaphore:
                    async with self.session.post(self.args.base_url.rstrip("/") + "/chat/completions",
                                                 json=body, headers=headers) as response:
                        response.raise_for_status()
                        reply = await response.json()
                return parse_json_list(reply["choices"][0]["message"]["content"])
            except (ValueError, KeyError, IndexError, TypeError, aiohttp.ClientError, asyncio.TimeoutError):
                continue
        self.num_skipped += 1
        return []


async def gather(tasks, desc: str) -> list:
    results = []
    for future in tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=desc):
        results.append(await future)
    return results


async def classification_rows(client: Client, n: int, num_requests: int) -> list[dict]:
    async def one(label: str, batch: int) -> list[dict]:
        items = await client.ask_list(LABEL_PROMPT.format(n=n, label=label, kind=kind_of(label)))
        return [dict(sentence=clean_text(s), label=label, batch=f"{label}/{batch}") for s in items if isinstance(s, str)]
    tasks = [one(label, b) for label in LABELS for b in range(num_requests)]
    return [row for rows in await gather(tasks, "labels") for row in rows]


async def rewrite_rows(client: Client, n: int, num_requests: int, seed: int) -> list[dict]:
    workplaces = [w.name for w in template_data.slots().workplaces]
    random.Random(seed).shuffle(workplaces)

    async def one(workplace: str) -> list[dict]:
        items = await client.ask_list(PAIR_PROMPT.format(n=n, workplace=workplace))
        return [dict(row, workplace=workplace) for row in map(pair_row, items) if row]
    tasks = [one(workplaces[i % len(workplaces)]) for i in range(num_requests)]
    return [row for rows in await gather(tasks, "pairs") for row in rows]


async def generate(args) -> dict:
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, args)
        cls = await classification_rows(client, args.num_per_request, args.num_requests_per_label)
        pairs = await rewrite_rows(client, args.num_pairs_per_request, args.num_pair_requests, args.seed)
    cls, cls_dropped = dedupe(cls, ("sentence",))
    pairs, pairs_dropped = dedupe(pairs, ("negative",))
    return dict(classification=split_by_group(shuffled(cls, args.seed), lambda r: r["batch"], args.validation_fraction, args.seed),
                rewrite=split_by_group(shuffled(pairs, args.seed), lambda r: r["workplace"], args.validation_fraction, args.seed),
                num_skipped=client.num_skipped, num_duplicates=cls_dropped + pairs_dropped,
                contexts=distribution(r["workplace"] for r in pairs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://localhost:3000/v1")
    parser.add_argument("--api-key", default="", help="sent as a Bearer token when given")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, default=Path("data/llm"))
    parser.add_argument("--num-per-request", type=int, default=10, help="sentences asked for per label request")
    parser.add_argument("--num-requests-per-label", type=int, default=20)
    parser.add_argument("--num-pairs-per-request", type=int, default=5)
    parser.add_argument("--num-pair-requests", type=int, default=200)
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=1500)
    parser.add_argument("--max-retries", type=int, default=2, help="retries of a malformed or failed reply")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(generate(args))
    for task in ("classification", "rewrite"):
        train, validation = result[task]
        write_split(args.out, task, train, validation)
        print(f"{task}: {len(train)} train, {len(validation)} validation -> {args.out / task}")
    print(f"skipped {result['num_skipped']} malformed replies, dropped {result['num_duplicates']} duplicates")
    print("pair contexts:", ", ".join(f"{name} {count}" for name, count in result["contexts"]))


if __name__ == "__main__":
    main()
