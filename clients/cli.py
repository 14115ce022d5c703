"""`takeoff chat`, `takeoff generate` and `takeoff classify`: the terminal side of the client."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from clients.chat import run_chat
from clients.client import DEFAULT_URL, TakeoffClient, sampling_fields
from clients.errors import TakeoffError, describe_error


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    chat = subparsers.add_parser("chat", help="talk to a running server, answers streamed live",
                                 description="Interactive chat with a running takeoff server. "
                                             "Type /help inside for the commands.")
    _add_connection_arguments(chat)
    chat.add_argument("--group", help="consumer group that generates (default: the server's)")
    chat.add_argument("--context", default="",
                      help="context for the feedback rewriter prompt (also /context)")
    chat.add_argument("--temperature", type=float, default=0.0,
                      help="0 is greedy; above 0 samples (default: 0)")
    chat.add_argument("--max-new-tokens", type=int, default=128, help="(default: 128)")
    chat.add_argument("--history", metavar="FILE", help="keep the input history in FILE")
    chat.set_defaults(func=run_chat)

    generate = subparsers.add_parser("generate", help="generate once and print the text",
                                     description="Send one generation request and print the "
                                                 "answer. TEXT '-' reads standard input.")
    generate.add_argument("text", metavar="TEXT")
    _add_connection_arguments(generate)
    _add_generation_arguments(generate)
    generate.add_argument("--stream", action="store_true", help="print pieces as they arrive")
    generate.add_argument("--json", action="store_true",
                          help="print the server's JSON answer, with metadata (with --stream: "
                               "one JSON object per line)")
    generate.set_defaults(func=lambda args: _run_one_shot(args, _generate))

    classify = subparsers.add_parser("classify", help="classify texts and print the labels",
                                     description="Classify each TEXT and print its most likely "
                                                 "label. TEXT '-' reads one text per line from "
                                                 "standard input.")
    classify.add_argument("texts", metavar="TEXT", nargs="+")
    _add_connection_arguments(classify)
    classify.add_argument("--group", help="consumer group that classifies")
    classify.add_argument("--json", action="store_true", help="print the server's JSON answer")
    classify.set_defaults(func=lambda args: _run_one_shot(args, _classify))


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("TAKEOFF_URL", DEFAULT_URL),
                        help=f"the server (default: {DEFAULT_URL}) [env TAKEOFF_URL]")
    parser.add_argument("--api-key", default=os.environ.get("TAKEOFF_API_KEY") or None,
                        help="bearer token, when the server needs one [env TAKEOFF_API_KEY]")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for an answer, or for the next streamed piece "
                             "(default: 120)")


def _add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", help="consumer group that generates")
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--min-new-tokens", type=int)
    parser.add_argument("--temperature", type=float,
                        help="0 is greedy; above 0 samples (from the whole distribution unless "
                             "--top-k or --top-p narrow it)")
    parser.add_argument("--top-k", type=int, help="1 is greedy (the server's default)")
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--repetition-penalty", type=float)
    parser.add_argument("--no-repeat-ngram-size", type=int)
    parser.add_argument("--seed", type=int, help="the same seed gives the same text")
    parser.add_argument("--stop", action="append", metavar="TEXT",
                        help="stop when TEXT is generated (repeatable)")
    parser.add_argument("--prompt-max-tokens", type=int, help="truncate longer inputs")


def _run_one_shot(args: argparse.Namespace, command) -> int:
    try:
        asyncio.run(command(args))
    except TakeoffError as error:
        print(f"takeoff {args.command}: {describe_error(error, args.url)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _connect(args: argparse.Namespace) -> TakeoffClient:
    return TakeoffClient(args.url, args.api_key, timeout=args.timeout)


async def _generate(args: argparse.Namespace) -> None:
    text = sys.stdin.read() if args.text == "-" else args.text
    fields = dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                  sampling_topp=args.top_p, repetition_penalty=args.repetition_penalty,
                  no_repeat_ngram_size=args.no_repeat_ngram_size, seed=args.seed,
                  stop=args.stop, prompt_max_tokens=args.prompt_max_tokens,
                  consumer_group=args.group, **sampling_fields(args.temperature, args.top_k))
    async with _connect(args) as client:
        if not args.stream:
            answer = await client.generate(text, return_metadata=args.json or None, **fields)
            print(json.dumps(answer, ensure_ascii=False) if args.json else answer["text"])
            return
        async with client.generate_stream(text, **fields) as stream:
            async for piece in stream:
                if args.json:
                    print(json.dumps({"text": piece}, ensure_ascii=False), flush=True)
                else:
                    print(piece, end="", flush=True)
        if args.json:
            print(json.dumps({"metadata": stream.metadata}))
        else:
            print()


async def _classify(args: argparse.Namespace) -> None:
    texts = []
    for text in args.texts:
        texts += [line for line in sys.stdin.read().splitlines() if line.strip()] \
            if text == "-" else [text]
    async with _connect(args) as client:
        answer = await client.classify(texts, consumer_group=args.group)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return
    labels = answer["labels"]
    for text, row in zip(texts, answer["result"]):
        best = max(range(len(row)), key=row.__getitem__)
        print(f"{labels[best]}\t{row[best]:.3f}\t{text}")
