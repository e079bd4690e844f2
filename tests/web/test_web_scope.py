"""A token's checks, as properties: a permission passes only when held, and a queue-scoped one
only on a queue one of the token's globs matches; listings show exactly those queues."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import given
from hypothesis import strategies as st

from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.trust.scope import QUEUE_SCOPED
from rwq.web.access import Principal
from rwq.web.errors import ApiError
from rwq.web.tokens import ApiToken

names = st.text("ab.c", min_size=1, max_size=6).filter(lambda n: n[0] != ".")
globs = st.lists(st.text("ab.*?", min_size=1, max_size=6), min_size=1, max_size=3)
permissions = st.sampled_from(sorted(CATALOG))


def _principal(held: list[str], queues: list[str]) -> Principal:
    token = ApiToken("t", tuple(held), tuple(queues), 0.0, None, "0" * 64)
    return Principal(token, "bearer", "GET /test", None)


def _allowed(principal: Principal, permission: str, queue: str | None) -> bool:
    try:
        principal.require(permission, queue)
    except ApiError as exc:
        assert exc.status == 403 and exc.extra["permission"] == permission
        return False
    return True


@given(st.lists(permissions, min_size=1, max_size=4), globs, permissions, names)
def test_a_check_passes_only_inside_the_grant(
    held: list[str], queues: list[str], permission: str, queue: str
) -> None:
    principal = _principal(held, queues)
    in_scope = "*" in queues or any(fnmatchcase(queue, g) for g in queues)
    expected = permission in held and (permission not in QUEUE_SCOPED or in_scope)
    assert _allowed(principal, permission, queue) is expected
    # naming no queue passes a queue-scoped permission only for a token of every queue
    if permission in held and permission in QUEUE_SCOPED:
        assert _allowed(principal, permission, None) is ("*" in queues)


@given(globs, st.lists(names, max_size=8))
def test_a_listing_shows_the_queues_of_the_scope(queues: list[str], known: list[str]) -> None:
    principal = _principal(["observer"], queues)
    shown = principal.visible(known)
    assert shown == [q for q in known if "*" in queues or any(fnmatchcase(q, g) for g in queues)]


@given(globs, st.text("ab.*?", min_size=1, max_size=6), st.lists(names, max_size=8))
def test_a_glob_passes_only_if_every_queue_it_matches_is_in_scope(
    queues: list[str], asked: str, known: list[str]
) -> None:
    principal = _principal(["admin.queue.peek"], queues)
    if _allowed(principal, "admin.queue.peek", asked):
        matched = [q for q in known if fnmatchcase(q, asked)]
        assert principal.visible(matched) == matched


def test_a_star_is_not_inside_a_question_mark() -> None:
    principal = _principal(["admin.queue.peek"], ["tenant.?"])
    assert _allowed(principal, "admin.queue.peek", "tenant.a")
    assert _allowed(principal, "admin.queue.peek", "tenant.?")
    assert not _allowed(principal, "admin.queue.peek", "tenant.*")
    assert not _allowed(principal, "admin.queue.peek", "*")
