"""The management API's answers, as /openapi.json describes them (its one request body,
Takeoff's ReaderConfig, is takeoff.engine.manifest.ReaderConfig: a manifest's readers are checked
by the same model)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, RootModel

from takeoff.api.schemas import Answer


class ReaderDescription(Answer):
    """Takeoff's ReaderInfo fields, then this server's."""
    reader_id: str
    consumer_group: str
    consumer_groups: list[str]
    consumer_name: str
    model_name: str = Field(description="the model's directory")
    model_type: Literal["SEQ2SEQ", "CLASSIFICATION", "EMBEDDING"]
    device: str
    pids: list[int]
    task: Literal["generate", "classify", "embed"]
    dtype: str
    dtype_reason: str
    max_input_len: int
    max_batch_size: int
    max_new_tokens: int | None = Field(None, description="a generator's cap")
    max_num_beams: int | None = Field(None, description="a generator's largest num_beams: "
                                                        "--max-num-beams, or its KV slots if fewer")


class ReaderGroups(RootModel[dict[str, list[ReaderDescription]]]):
    """Each consumer group's readers."""


class LoadingReader(Answer):
    consumer_groups: list[str]
    model_name: str
    device: str


class ServerSettings(Answer):
    port: int
    management_port: int
    openai_port: int
    max_batch_size: int
    max_queue: int


class ServerStatus(Answer):
    live_readers: dict[str, ReaderDescription]
    loading_readers: dict[str, LoadingReader]
    draining_readers: dict[str, ReaderDescription]
    dead_readers: dict[str, ReaderDescription]
    ready: bool


class StatusAnswer(Answer):
    config: ServerSettings
    status: ServerStatus


class ReaderSettings(Answer):
    """Takeoff's ReaderConfig, the fields that were set."""
    model_name: str
    consumer_group: str
    device: str
    max_batch_size: int | None = None
    max_sequence_length: int | None = None


class RemovedAnswer(Answer):
    reader_id: str
    removed: Literal[True]
