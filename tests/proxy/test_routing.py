from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.proxy.routing import HeaderMatch, RouteMatch, RouteTable, shadowed


def table(*routes: RouteMatch) -> RouteTable[int]:
    return RouteTable([(route, index) for index, route in enumerate(routes)])


def test_first_declared_match_wins() -> None:
    routes = table(
        RouteMatch(exact=b"/api/health"),
        RouteMatch(prefix=b"/api/", methods=frozenset({b"POST"})),
        RouteMatch(prefix=b"/api/"),
        RouteMatch(regex=r"/items/\d+"),
        RouteMatch(),
    )
    assert routes.match(b"GET", b"/api/health?x=1", []) == 0  # the query is not the path
    assert routes.match(b"POST", b"/api/orders", []) == 1
    assert routes.match(b"GET", b"/api/orders", []) == 2
    assert routes.match(b"GET", b"/items/42", []) == 3
    assert routes.match(b"GET", b"/items/x", []) == 4
    assert table(RouteMatch(prefix=b"/a")).match(b"GET", b"/b", []) is None


def test_header_conditions() -> None:
    routes = table(
        RouteMatch(prefix=b"/", headers=(HeaderMatch(b"X-Canary", exact=b"1"),)),
        RouteMatch(prefix=b"/", headers=(HeaderMatch(b"x-user", regex=r"admin-\d+"),)),
        RouteMatch(prefix=b"/", headers=(HeaderMatch(b"x-debug", present=False),)),
        RouteMatch(prefix=b"/"),
    )
    assert routes.match(b"GET", b"/", [(b"x-canary", b"1")]) == 0
    assert routes.match(b"GET", b"/", [(b"X-User", b"admin-7")]) == 1
    assert routes.match(b"GET", b"/", [(b"X-User", b"admin-7x")]) == 2
    assert routes.match(b"GET", b"/", [(b"X-Debug", b"on")]) == 3


def test_invalid_routes() -> None:
    with pytest.raises(re.error):
        RouteMatch(regex="([unclosed")
    with pytest.raises(re.error):
        HeaderMatch(b"x", regex="*bad")
    with pytest.raises(ValueError, match="only one"):
        RouteMatch(exact=b"/a", prefix=b"/")


def test_shadowed_routes() -> None:
    assert shadowed(
        [
            RouteMatch(prefix=b"/api/"),
            RouteMatch(exact=b"/api/users"),  # never reached
            RouteMatch(prefix=b"/api/v2/", methods=frozenset({b"GET"})),  # never reached
            RouteMatch(prefix=b"/static/", methods=frozenset({b"GET"})),
            RouteMatch(prefix=b"/static/img/"),  # reachable: POST passes the GET-only one
            RouteMatch(prefix=b"/x", headers=(HeaderMatch(b"a"),)),
            RouteMatch(prefix=b"/x"),  # reachable: the earlier one needs a header
            RouteMatch(),
            RouteMatch(exact=b"/anything"),  # after a catch-all: never reached
        ]
    ) == [(0, 1), (0, 2), (7, 8)]


PATHS = st.sampled_from([b"/", b"/a", b"/a/b", b"/ab", b"/b", b"/a/b/c", b"/items/1", b"/c"])
METHODS = st.sampled_from([b"GET", b"POST", b"PUT"])


@st.composite
def route_matches(draw: st.DrawFn) -> RouteMatch:
    kind = draw(st.sampled_from(["exact", "prefix", "regex", "none"]))
    path = draw(PATHS)
    methods = frozenset(draw(st.lists(METHODS, max_size=2)))
    headers: tuple[HeaderMatch, ...] = ()
    if draw(st.booleans()):
        headers = (HeaderMatch(b"x-k", exact=draw(st.sampled_from([b"1", b"2"]))),)
    if kind == "exact":
        return RouteMatch(exact=path, methods=methods, headers=headers)
    if kind == "prefix":
        return RouteMatch(prefix=path, methods=methods, headers=headers)
    if kind == "regex":
        return RouteMatch(regex=draw(st.sampled_from([r"/a.*", r"/items/\d+", r"/[bc]"])),
                          methods=methods, headers=headers)  # fmt: skip
    return RouteMatch(methods=methods, headers=headers)


@settings(max_examples=300)
@given(
    st.lists(route_matches(), max_size=12),
    METHODS,
    PATHS,
    st.lists(st.sampled_from([(b"x-k", b"1"), (b"X-K", b"2")]), max_size=1),
)
def test_compiled_table_agrees_with_a_linear_scan(
    routes: list[RouteMatch], method: bytes, path: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    expected = next(
        (i for i, r in enumerate(routes) if r.path_matches(path) and r.conditions(method, headers)),
        None,
    )
    assert table(*routes).match(method, path, headers) == expected


@settings(max_examples=200)
@given(st.lists(route_matches(), min_size=2, max_size=8), METHODS, PATHS)
def test_a_shadowed_route_never_matches(
    routes: list[RouteMatch], method: bytes, path: bytes
) -> None:
    compiled = table(*routes)
    hidden = {later for _, later in shadowed(routes)}
    for headers in ([], [(b"x-k", b"1")], [(b"x-k", b"2")]):
        assert compiled.match(method, path, headers) not in hidden
