"""The servers takeoff is compared with, each behind HTTP as a user would run them.

- `benchmarks.baselines.hf`: Hugging Face `generate` in a small Starlette server with dynamic
  batching, "what you would write yourself" (also serves /classify);
- `benchmarks.baselines.ct2`: the same server around CTranslate2's `translate_batch`.

Both speak the part of the Takeoff API the load benchmark sends (`/generate`, `/classify`,
`/ready`); neither streams, so their time to first token is their end-to-end latency.
"""
