"""The token store: secrets shown once and kept hashed, names and arguments checked."""

from __future__ import annotations

import hashlib

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from rwq.config import Settings
from rwq.queue.keys import Keys
from rwq.web.tokens import (
    InvalidToken,
    TokenArgumentError,
    TokenExists,
    TokenStore,
    UnknownToken,
)


@pytest.fixture
def store(redis_client: redis.Redis, settings: Settings) -> TokenStore:
    return TokenStore(redis_client, Keys(settings.prefix))


def test_a_token_is_stored_as_the_hash_of_its_secret(
    store: TokenStore, redis_client: redis.Redis
) -> None:
    token, text = store.create("ci", ["observer"], ["tenant.*"], expires_in=3600)
    assert text.startswith("rwq_ci.")
    secret = text.rpartition(".")[2]
    assert len(secret) >= 43  # 256 bits, URL-safe base64
    stored = redis_client.hget(Keys().web_tokens, "ci")
    assert secret not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert store.authenticate(text) == token
    assert "secret" not in str(token.to_dict())
    assert token.expires_at == pytest.approx(token.created_at + 3600)


def test_list_shows_every_token_and_when_it_was_last_used(store: TokenStore) -> None:
    _, text = store.create("b", ["admin.queue.peek"])
    store.create("a", ["operator"], ["x", "y.*"])
    store.authenticate(text)
    a, b = store.list()
    assert (a.name, a.queues, a.last_used_at) == ("a", ("x", "y.*"), None)
    assert (b.name, b.permissions, b.queues) == ("b", ("admin.queue.peek",), ("*",))
    assert b.last_used_at is not None


def test_create_refuses_a_taken_name_and_revoke_an_unknown_one(store: TokenStore) -> None:
    store.create("ci", ["observer"])
    with pytest.raises(TokenExists, match="'ci' exists already"):
        store.create("ci", ["system"])
    store.revoke("ci")
    with pytest.raises(UnknownToken, match="no token named 'ci'"):
        store.revoke("ci")


@pytest.mark.parametrize(
    ("args", "argument", "reason"),
    [
        (("bad name", ["observer"]), "NAME", "1-64 of letters"),
        (("ci", []), "--permission", "at least one"),
        (("ci", ["admin.everything"]), "--permission", "unknown permission 'admin.everything'"),
        (("ci", ["observer"], ["bad/queue"]), "--queues", "'bad/queue'"),
        (("ci", ["observer"], ["*"], 0), "--expires", "more than 0"),
    ],
)
def test_bad_arguments_are_named(
    store: TokenStore, args: tuple[object, ...], argument: str, reason: str
) -> None:
    with pytest.raises(TokenArgumentError) as caught:
        store.create(*args)  # type: ignore[arg-type]
    assert caught.value.argument == argument
    assert reason in str(caught.value)


def test_an_expired_token_is_refused(store: TokenStore) -> None:
    _, text = store.create("brief", ["observer"], expires_in=10)
    store.clock = lambda: 4_000_000_000.0
    with pytest.raises(InvalidToken, match="expired") as caught:
        store.authenticate(text)
    assert caught.value.name == "brief"


@given(st.text(max_size=120))
def test_no_text_but_the_token_authenticates(text: str) -> None:
    store = TokenStore(_NoServer(), Keys())  # a malformed text never reaches the server
    try:
        store.authenticate(text)
    except InvalidToken:
        pass
    except _Reached:
        assert text.strip().startswith("rwq_")


class _Reached(Exception):
    pass


class _NoServer:
    def pipeline(self, transaction: bool = False) -> _NoServer:
        raise _Reached
