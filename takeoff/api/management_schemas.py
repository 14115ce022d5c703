"""The management API's bodies and answers, as /openapi.json describes them (Takeoff's
ReaderConfig, the body of POST /reader, is takeoff.engine.manifest.ReaderConfig: a manifest's
readers are checked by the same model)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, RootModel

from takeoff.api.schemas import Answer, Body
from takeoff.config import LORA_NAME


class LoraBody(Body):
    """POST /reader/{reader_id}/lora: a LoRA adapter for a generator reader."""
    lora_id: str = Field(pattern=LORA_NAME, description="the name requests give as lora_id (and "
                         "as the OpenAI API's model)")
    path: str = Field(min_length=1, description="the adapter's directory on the server: PEFT's "
                      "adapter_config.json and adapter_model.safetensors")


class LoraDescription(Answer):
    lora_id: str
    path: str = Field(description="the adapter's directory")
    r: int = Field(description="its rank (adapter_config.json)")
    lora_alpha: float
    target_modules: list[str] = Field(description="the kinds of linear layer it adapts")


class LoraRemovedAnswer(Answer):
    reader_id: str
    lora_id: str
    removed: Literal[True]


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
    loras: list[LoraDescription] | None = Field(None, description="a generator's LoRA adapters")
    max_loras: int | None = Field(None, description="the most adapters a generator holds")
    max_num_beams: int | None = Field(None, description="a generator's largest num_beams: "
                                                        "--max-num-beams, or its KV slots if fewer")
    sampling_defaults: dict[str, Any] | None = Field(None, description=(
        "a generator's defaults from its generation_config.json (SamplingParams names, lowered "
        "to the caps above; empty with --generation-config ignore): a request's own fields win"))


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
    loras: dict[str, str] | None = Field(None, description="the adapters it was loaded with")


class RemovedAnswer(Answer):
    reader_id: str
    removed: Literal[True]
