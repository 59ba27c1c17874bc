"""OpenAI request and response bodies, and their translation into a `GenerationRequest`.

Requests ignore fields they do not know (SDKs send more than a server needs) but
reject, with 400 `unsupported`, the ones that would change the answer and that
this service cannot honour: `n` > 1, tools, logprobs, image parts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from llm_local.backends.base import (
    FinishReason,
    GenerationRequest,
    Message,
    Role,
    SamplingParams,
    Unsupported,
)

JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
# Counts a request may give: beyond this they are nonsense, and no engine takes them.
INT32_MAX = 2**31 - 1
# OpenAI's defaults; proxies send them explicitly so the engine's own defaults never apply.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_COMPLETION_MAX_TOKENS = 16
# OpenAI's newer name for the system role.
ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TextPart(_Request):
    """A part of a message's content; only `text` parts are served."""

    type: str
    text: str | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[Any] | None = None


class StreamOptions(_Request):
    include_usage: bool = False


class TextFormat(_Request):
    type: Literal["text"]


class JsonObjectFormat(_Request):
    type: Literal["json_object"]
    # llama-cpp-python's extension: `{"type": "json_object", "schema": {...}}`.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class JsonSchemaSpec(_Request):
    name: str = "response"
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]
StopString = Annotated[str, Field(min_length=1)]
Stop = StopString | Annotated[list[StopString], Field(max_length=16)] | None


def response_schema(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """The schema the answer must satisfy; `json_object` is any object."""
    match response_format:
        case JsonSchemaFormat(json_schema=spec):
            return spec.json_schema
        case JsonObjectFormat(json_schema=schema):
            return schema if schema is not None else JSON_OBJECT_SCHEMA
        case _:
            return None


class _GenerationRequest(_Request):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: Stop = None
    # A 64-bit integer, as every engine takes it (a bigger one cannot even be sent on).
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: int | None = Field(default=None, ge=1, le=INT32_MAX)
    response_format: ResponseFormat | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def json_schema(self) -> dict[str, Any] | None:
        return response_schema(self.response_format)

    def _check_common(self) -> None:
        if self.n is not None and self.n > 1:
            raise Unsupported("n > 1 is not supported: one choice per request")

    def _sampling(self, max_tokens: int) -> SamplingParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            top_p=DEFAULT_TOP_P if self.top_p is None else self.top_p,
            stop=stop,
            seed=self.seed,
        )


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def to_generation(
        self, request_id: str, max_tokens: int, deadline: float, model: str
    ) -> GenerationRequest:
        self._check_common()
        if self.tools or self.functions:
            raise Unsupported("tools and function calling are not supported")
        if self.logprobs:
            raise Unsupported("logprobs are not supported")
        return GenerationRequest(
            request_id=request_id,
            params=self._sampling(max_tokens),
            messages=tuple(_message(m) for m in self.messages),
            json_schema=self.json_schema(),
            deadline=deadline,
            model=model,
        )


class PrefillRequest(_Request):
    """`POST /v1/prefill`: the prompt part of a chat completion request (other fields,
    sampling included, are ignored)."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    response_format: ResponseFormat | None = None

    def to_messages(self) -> tuple[Message, ...]:
        return tuple(_message(m) for m in self.messages)


class CompletionRequest(_GenerationRequest):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=INT32_MAX)
    logprobs: int | None = Field(default=None, ge=-INT32_MAX, le=INT32_MAX)

    def requested_max_tokens(self) -> int:
        return self.max_tokens or DEFAULT_COMPLETION_MAX_TOKENS

    def to_generation(
        self, request_id: str, max_tokens: int, deadline: float, model: str
    ) -> GenerationRequest:
        self._check_common()
        if self.echo or self.suffix or (self.best_of or 1) > 1 or self.logprobs is not None:
            raise Unsupported("echo, suffix, best_of and logprobs are not supported")
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return GenerationRequest(
            request_id=request_id,
            params=self._sampling(max_tokens),
            prompt=prompt,
            json_schema=self.json_schema(),
            deadline=deadline,
            model=model,
        )


class EmbeddingRequest(_Request):
    input: str | Annotated[list[str], Field(min_length=1, max_length=256)]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=-INT32_MAX, le=INT32_MAX)

    def inputs(self) -> list[str]:
        if self.dimensions is not None:
            raise Unsupported("dimensions is not supported: vectors have the model's size")
        return [self.input] if isinstance(self.input, str) else self.input


def _message(message: ChatMessage) -> Message:
    if message.tool_calls:
        raise Unsupported("tool calls are not supported")
    role = ROLES[message.role]
    content = message.content
    if content is None:
        return Message(role=role, content="")
    if isinstance(content, str):
        return Message(role=role, content=content)
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise Unsupported(f"content parts of type {part.type!r} are not supported")
        texts.append(part.text)
    return Message(role=role, content="".join(texts))


# Responses.


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # Only from a backend that knows (the embedded one); left out otherwise.
    prompt_tokens_details: PromptTokensDetails | None = None

    @model_serializer(mode="wrap")
    def _without_unknown_details(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if data.get("prompt_tokens_details", 0) is None:
            del data["prompt_tokens_details"]
        return data


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason
    # vLLM's field: why the stream stopped when finish_reason alone cannot say ("deadline").
    stop_reason: str | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: FinishReason
    stop_reason: str | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llm-local"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # a base64 string of little-endian float32 when asked


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
