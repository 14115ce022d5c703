"""The readers a server holds at a moment, as the event loop sees them: by id and by consumer
group, each with its admission count; readers being loaded and readers being drained.

Bookkeeping only (no model work, no engine thread): the Engine asks it which reader takes a
request (the least loaded of the group) and tells it when readers come and go.
"""
from __future__ import annotations

from pathlib import Path

from scheduler.admission import Admission
from scheduler.request import Task
from takeoff.engine.manifest import ReaderSpec
from takeoff.engine.readers import Reader, ReaderInfo, resolve_group
from takeoff.errors import ApiError, bad_request, not_found


class ReaderSet:
    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self.readers: dict[str, Reader] = {}  # serving, by reader id
        self.admission: dict[str, Admission] = {}
        self.loading: dict[str, ReaderSpec] = {}  # reader id -> spec, while it loads
        self.draining: set[str] = set()  # taking no new requests, finishing the ones it has

    # ---- asking ---------------------------------------------------------------------------
    def by_group(self) -> dict[str, list[Reader]]:
        """Serving readers (not draining) by consumer group, in the order they came."""
        groups: dict[str, list[Reader]] = {}
        for reader in self.readers.values():
            if reader.reader_id not in self.draining:
                groups.setdefault(reader.info.group, []).append(reader)
        return groups

    def groups(self) -> dict[str, ReaderInfo]:
        """Each consumer group, described by its first reader."""
        return {name: readers[0].info for name, readers in self.by_group().items()}

    def resolve(self, group: str | None, task: Task | None) -> str:
        return resolve_group(self.by_group(), group, task)

    def pick(self, group: str | None, task: Task | None) -> Reader:
        """The least-loaded reader of the group (404 unknown, 400 wrong task)."""
        readers = self.by_group()[self.resolve(group, task)]
        return min(readers, key=lambda r: self.admission[r.reader_id].num_unfinished)

    def is_serving(self, reader_id: str) -> bool:
        """Loaded, and not draining."""
        return reader_id in self.readers and reader_id not in self.draining

    def get(self, reader_id: str) -> Reader:
        reader = self.readers.get(reader_id)
        if reader is None:
            raise not_found(f"no reader with id '{reader_id}'; GET /reader_groups lists them",
                            "reader_id")
        return reader

    def max_inputs(self, group: str | None, task: Task) -> int:
        """The most requests one call may submit to the group: what it can ever admit."""
        readers = self.by_group()[self.resolve(group, task)]
        return max(self.admission[r.reader_id].capacity for r in readers)

    @property
    def num_unfinished(self) -> int:
        return sum(a.num_unfinished for a in self.admission.values())

    # ---- coming and going -----------------------------------------------------------------
    def reserve(self, spec: ReaderSpec, task: Task) -> str:
        """Claim an id for a reader about to load (409 when it would duplicate one)."""
        if spec.reader_id and (spec.reader_id in self.readers or spec.reader_id in self.loading):
            raise ApiError(409, f"a reader with id '{spec.reader_id}' already exists",
                           "conflict_error", "reader_id")
        wanted = _resolved(spec.model_name)
        for other in [r.spec for r in self.readers.values()] + list(self.loading.values()):
            if other.consumer_group == spec.consumer_group and _resolved(other.model_name) == wanted:
                raise ApiError(409, f"consumer group '{spec.consumer_group}' already has a "
                               f"reader of {spec.model_name}", "conflict_error", "model_name")
        group = self.by_group().get(spec.consumer_group)
        if group and group[0].info.task is not task:
            raise bad_request(f"consumer group '{spec.consumer_group}' serves "
                              f"{group[0].info.task.value} requests; this model would "
                              f"{task.value}", "consumer_group")
        reader_id = spec.reader_id or self._new_id(spec.consumer_group)
        self.loading[reader_id] = spec
        return reader_id

    def add(self, reader: Reader) -> None:
        self.loading.pop(reader.reader_id, None)
        self.readers[reader.reader_id] = reader
        self.admission[reader.reader_id] = Admission(reader.info.max_batch_size, self.max_queue)

    def remove(self, reader_id: str) -> None:
        self.readers.pop(reader_id, None)
        self.admission.pop(reader_id, None)
        self.draining.discard(reader_id)

    def _new_id(self, group: str) -> str:
        taken = set(self.readers) | set(self.loading)
        index = 0
        while f"{group}-{index}" in taken:
            index += 1
        return f"{group}-{index}"


def _resolved(path: str) -> str:
    return str(Path(path).expanduser().resolve())
