"""Client matrix: langchain-openai and langchain-google-genai, each with its default retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from clients.conftest import ACME, BROKE, Matrix
from fakes.openai_upstream import Reply
from google.genai import errors
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_google_genai import ChatGoogleGenerativeAI, GoogleGenerativeAIEmbeddings
from langchain_google_genai.chat_models import ChatGoogleGenerativeAIError
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel, SecretStr


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """The HTTP client the langchain-openai objects use, closed before the loop is (they do
    not close their own)."""
    async with openai.DefaultAsyncHttpxClient() as client:
        yield client


def _openai_chat(matrix: Matrix, http: httpx2.AsyncClient, key: str = ACME) -> ChatOpenAI:
    # langchain-openai's default: 2 retries, through the openai SDK.
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=matrix.openai_url,
        api_key=SecretStr(key),
        http_async_client=http,
    )


@pytest.fixture
async def google_chats() -> AsyncIterator[list[ChatGoogleGenerativeAI]]:
    chats: list[ChatGoogleGenerativeAI] = []
    yield chats
    for chat in chats:
        assert chat.client is not None
        await chat.client.aio.aclose()


def _google_chat(
    matrix: Matrix, chats: list[ChatGoogleGenerativeAI], key: str = ACME
) -> ChatGoogleGenerativeAI:
    # langchain-google-genai's default: max_retries=6 through google-genai's retry options.
    chat = ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", base_url=matrix.url, api_key=SecretStr(key)
    )
    chats.append(chat)
    return chat


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class City(BaseModel):
    name: str
    country: str


async def test_langchain_openai_invoke_and_stream(matrix: Matrix, http: httpx2.AsyncClient) -> None:
    chat = _openai_chat(matrix, http)
    reply = await chat.ainvoke("Hello!")
    assert isinstance(reply, AIMessage)
    assert reply.content
    assert reply.usage_metadata is not None
    pieces = [c.content async for c in chat.astream("Hello!")]
    assert "".join(str(p) for p in pieces).startswith("Hello!")
    matrix.seen.assert_ids()


async def test_langchain_openai_tools_and_structured_output(
    matrix: Matrix, http: httpx2.AsyncClient
) -> None:
    matrix.openai.fake.enqueue(
        Reply(text=None, tool_calls=[{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]),
        Reply(text='{"name": "Oslo", "country": "Norway"}'),
    )
    chat = _openai_chat(matrix, http)
    reply = await chat.bind_tools([get_weather]).ainvoke("Weather in Oslo?")
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["name"] == "get_weather"
    city = await chat.with_structured_output(City, method="json_schema").ainvoke("A city")
    assert city == City(name="Oslo", country="Norway")


async def test_langchain_openai_embeddings(matrix: Matrix, http: httpx2.AsyncClient) -> None:
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=matrix.openai_url,
        api_key=SecretStr(ACME),
        check_embedding_ctx_length=False,
        http_async_client=http,
    )
    assert len(await embeddings.aembed_documents(["a", "b"])) == 2


async def test_langchain_openai_budget_stop_is_one_request(
    matrix: Matrix, http: httpx2.AsyncClient
) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await _openai_chat(matrix, http, BROKE).ainvoke("Hello!")
    assert "budget stop" in info.value.message
    assert len(matrix.seen.answers) == 1
    matrix.seen.assert_ids()


async def test_langchain_google_invoke_and_stream(
    matrix: Matrix, google_chats: list[ChatGoogleGenerativeAI]
) -> None:
    chat = _google_chat(matrix, google_chats)
    reply = await chat.ainvoke("Hello!")
    assert reply.text == "Hello from the fake Gemini."
    pieces = [c.text async for c in chat.astream("Hello!")]
    assert "".join(pieces) == "Hello from the fake Gemini."
    matrix.seen.assert_ids()


async def test_langchain_google_embeddings(matrix: Matrix) -> None:
    embeddings = GoogleGenerativeAIEmbeddings(
        model="gemini-embedding-001", base_url=matrix.url, api_key=SecretStr(ACME)
    )
    assert len(await embeddings.aembed_documents(["a", "b"])) == 2
    assert embeddings.client is not None
    await embeddings.client.aio.aclose()


async def test_langchain_google_budget_stop_is_one_request(
    matrix: Matrix, google_chats: list[ChatGoogleGenerativeAI]
) -> None:
    # The symptom: 6 attempts over 33.5 s against a 429. Now: one, at once.
    with pytest.raises(ChatGoogleGenerativeAIError) as info:
        await _google_chat(matrix, google_chats, BROKE).ainvoke("Hello!")
    assert "budget stop" in str(info.value)
    cause: BaseException | None = info.value
    while cause is not None and not isinstance(cause, errors.ClientError):
        cause = cause.__cause__
    assert isinstance(cause, errors.ClientError), info.value
    assert (cause.code, cause.status) == (400, "FAILED_PRECONDITION")
    assert len(matrix.seen.answers) == 1
    matrix.seen.assert_ids()
