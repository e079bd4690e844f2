"""Plugin storage: isolation, atomic quotas (keys, bytes, overwrites), persistence."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rwq.plugins.host_api.storage import PluginStorage, StorageError, StorageQuotaExceeded
from rwq.queue.keys import InvalidPluginName, Keys

KEYS = Keys("rwq")
MakeStorage = Callable[..., PluginStorage]


@pytest.fixture
def make_storage(redis_client: redis.Redis) -> MakeStorage:
    def make(
        plugin: str = "alpha", *, max_keys: int = 100, max_bytes: int = 10_000
    ) -> PluginStorage:
        return PluginStorage(redis_client, KEYS, plugin, max_keys=max_keys, max_bytes=max_bytes)

    return make


def size(key: str, value: str) -> int:
    return len(key.encode()) + len(value.encode())


def test_get_set_delete_list(make_storage: MakeStorage) -> None:
    store = make_storage()
    assert store.get("missing") is None
    usage = store.set("config", '{"a": 1}')
    assert (usage.keys, usage.bytes) == (1, size("config", '{"a": 1}'))
    store.set("seen:1", "x")
    store.set("seen:2", "y")
    assert store.get("config") == '{"a": 1}'
    assert store.list() == ["config", "seen:1", "seen:2"]
    assert store.list("seen:") == ["seen:1", "seen:2"]
    assert store.list("seen:", limit=1) == ["seen:1"]
    assert store.delete("seen:1") is True
    assert store.delete("seen:1") is False
    assert store.list("seen:") == ["seen:2"]
    assert store.usage().bytes == size("config", '{"a": 1}') + size("seen:2", "y")


def test_a_prefix_with_glob_characters_is_literal(make_storage: MakeStorage) -> None:
    store = make_storage()
    for key in ("a*b", "axb", "a?", "a[1]", "a\\z"):
        store.set(key, "v")
    assert store.list("a*") == ["a*b"]
    assert store.list("a?") == ["a?"]
    assert store.list("a[") == ["a[1]"]
    assert store.list("a\\") == ["a\\z"]


def test_plugins_never_see_each_others_keys(
    make_storage: MakeStorage, redis_client: redis.Redis
) -> None:
    alpha, beta = make_storage("alpha"), make_storage("beta")
    alpha.set("secret", "alpha's")
    assert beta.get("secret") is None
    assert beta.list() == []
    assert beta.delete("secret") is False
    assert alpha.get("secret") == "alpha's"
    beta.set("secret", "beta's")
    assert alpha.get("secret") == "alpha's"
    assert alpha.usage().keys == beta.usage().keys == 1
    # Each plugin's keys share its own hash tag.
    assert sorted(redis_client.keys("*")) == sorted(
        KEYS.plugin_storage(p) if k == "s" else KEYS.plugin_storage_usage(p)
        for p in ("alpha", "beta")
        for k in ("s", "u")
    )
    assert KEYS.plugin_storage("alpha").startswith("rwq:{rwq:plugin:alpha}:")


@pytest.mark.parametrize(
    "name", ["", "Alpha", "a:b", "a}b", "a{b", "../x", "a b", "a*", "x" * 65, "ünï"]
)
def test_a_name_that_could_escape_its_namespace_is_refused(
    make_storage: MakeStorage, name: str
) -> None:
    with pytest.raises(InvalidPluginName):
        make_storage(name)


@pytest.mark.parametrize("key", ["", "a\x00b", "line\nbreak", "x" * 257, "é" * 129])
def test_bad_keys_are_refused(make_storage: MakeStorage, key: str) -> None:
    store = make_storage()
    with pytest.raises(StorageError):
        store.set(key, "v")
    with pytest.raises(StorageError):
        store.get(key)
    assert store.usage().keys == 0


def test_values_are_strings_of_bounded_size(make_storage: MakeStorage) -> None:
    store = make_storage(max_bytes=1_000_000)
    with pytest.raises(StorageError, match="string"):
        store.set("k", 42)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="at most"):
        store.set("k", "x" * (64 * 1024 + 1))
    store.set("k", "x" * 64 * 1024)


def test_the_key_quota_refuses_a_new_key_but_not_an_overwrite(make_storage: MakeStorage) -> None:
    store = make_storage(max_keys=2)
    store.set("a", "1")
    store.set("b", "2")
    with pytest.raises(StorageQuotaExceeded) as refused:
        store.set("c", "3")
    assert (refused.value.quota, refused.value.limit, refused.value.requested) == ("keys", 2, 3)
    assert store.get("c") is None
    assert store.usage().keys == 2
    store.set("a", "overwritten")
    store.delete("b")
    store.set("c", "3")
    assert store.list() == ["a", "c"]


def test_the_byte_quota_counts_keys_and_values_and_overwrites_by_difference(
    make_storage: MakeStorage,
) -> None:
    store = make_storage(max_bytes=10)
    store.set("ab", "cdef")  # 6 bytes
    with pytest.raises(StorageQuotaExceeded) as refused:
        store.set("x", "yyyy")  # 6 + 5 = 11
    assert (refused.value.quota, refused.value.requested) == ("bytes", 11)
    assert store.usage().bytes == 6
    store.set("ab", "cdefghij")  # overwrite: 2 + 8 = 10, the difference is what counts
    assert store.usage().bytes == 10
    with pytest.raises(StorageQuotaExceeded):
        store.set("ab", "cdefghijk")
    assert store.get("ab") == "cdefghij"
    store.set("ab", "")  # shrinking always fits
    assert store.usage().bytes == 2


def test_bytes_are_utf8_bytes(make_storage: MakeStorage) -> None:
    store = make_storage(max_bytes=6)
    store.set("é", "éé")  # 2 + 4
    assert store.usage().bytes == 6
    with pytest.raises(StorageQuotaExceeded):
        store.set("é", "ééa")


def test_a_lowered_quota_lets_data_shrink_but_not_grow(make_storage: MakeStorage) -> None:
    make_storage(max_bytes=100).set("k", "x" * 50)
    store = make_storage(max_bytes=20)  # the plugin's update asked for less
    with pytest.raises(StorageQuotaExceeded):
        store.set("k", "x" * 51)
    store.set("k", "x" * 30)
    assert store.usage().bytes == 31


def test_data_survives_a_new_instance(make_storage: MakeStorage) -> None:
    first = make_storage()
    first.set("state", '{"n": 3}')
    first.set("other", "1")
    restarted = make_storage()  # a restart or a reload builds a new one
    assert restarted.get("state") == '{"n": 3}'
    assert restarted.usage() == first.usage()


def test_a_lost_byte_counter_is_rebuilt_from_the_data(
    make_storage: MakeStorage, redis_client: redis.Redis
) -> None:
    store = make_storage(max_bytes=20)
    store.set("k", "x" * 10)
    redis_client.delete(KEYS.plugin_storage_usage("alpha"))
    assert store.usage().bytes == 11
    with pytest.raises(StorageQuotaExceeded):
        store.set("j", "y" * 9)


def test_clear_removes_everything(make_storage: MakeStorage) -> None:
    store = make_storage()
    store.set("a", "1")
    store.clear()
    assert store.list() == []
    assert store.usage().bytes == 0


_keys = st.sampled_from(["a", "b", "c", "dd", "é", "long-key"])
_values = st.text(alphabet="xyé", max_size=12)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _keys, _values),
        st.tuples(st.just("delete"), _keys, st.just("")),
    ),
    max_size=25,
)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, max_keys=st.integers(0, 4), max_bytes=st.integers(0, 40))
def test_usage_always_equals_the_stored_sizes_and_stays_within_quota(
    make_storage: MakeStorage,
    ops: list[tuple[str, str, str]],
    max_keys: int,
    max_bytes: int,
) -> None:
    store = make_storage("prop", max_keys=max_keys, max_bytes=max_bytes)
    store.clear()
    model: dict[str, str] = {}
    for op, key, value in ops:
        if op == "set":
            after = {**model, key: value}
            fits = len(after) <= max_keys and sum(size(k, v) for k, v in after.items()) <= max_bytes
            shrinks = key in model and size(key, value) <= size(key, model[key])
            try:
                store.set(key, value)
            except StorageQuotaExceeded:
                assert not fits and not shrinks
            else:
                assert fits or shrinks
                model = after
        else:
            assert store.delete(key) == (key in model)
            model.pop(key, None)
        usage = store.usage()
        assert usage.keys == len(model) <= max_keys
        assert usage.bytes == sum(size(k, v) for k, v in model.items()) <= max_bytes
    assert {k: store.get(k) for k in store.list()} == model
