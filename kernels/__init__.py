"""Everything that touches torch: loading, T5 encode/decode, classifier forward, KV cache, sampling, the runner."""
