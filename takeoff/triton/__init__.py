"""`takeoff triton`: the same readers served through NVIDIA Triton (PyTriton), one Triton model per
consumer group, every one of them backed by this project's Engine. Nothing here is imported by
`takeoff serve`; only command.py and platform.py import without PyTriton installed."""
