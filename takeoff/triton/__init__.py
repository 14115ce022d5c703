"""`takeoff triton`: the same readers served through NVIDIA Triton (PyTriton), one Triton model per
consumer group, every one of them backed by this project's Engine through `Engine.submit`.
Nothing here is imported by `takeoff serve`; `takeoff triton` is a `takeoff.commands` entry point
(pyproject.toml). Only models.py and server.py need PyTriton to import."""
