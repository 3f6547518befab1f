from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.config.proxy import HeaderMatchConfig, RouteMatchConfig
from pillion.proxy.routing import HeaderMatch, RouteMatch, RouteTable, compile_match


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


def test_compile_from_config() -> None:
    config = RouteMatchConfig(
        prefix="/api/",
        methods=["GET"],
        headers=[HeaderMatchConfig(name="X-Canary", exact="1")],
    )
    routes = RouteTable([(compile_match(config), "canary")])
    assert routes.match(b"GET", b"/api/x", [(b"x-canary", b"1")]) == "canary"
    assert routes.match(b"POST", b"/api/x", [(b"x-canary", b"1")]) is None
    assert routes.match(b"GET", b"/api/x", []) is None


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


@st.composite
def route_configs(draw: st.DrawFn) -> RouteMatchConfig:
    kind = draw(st.sampled_from(["exact", "prefix", "none"]))
    path = draw(PATHS).decode()
    methods = sorted(set(draw(st.lists(METHODS, max_size=2))))
    headers = [HeaderMatchConfig(name="x-k", exact="1")] if draw(st.booleans()) else []
    fields: dict[str, object] = {"methods": [m.decode() for m in methods], "headers": headers}
    if kind != "none":
        fields[kind] = path
    return RouteMatchConfig.model_validate(fields)


@settings(max_examples=300)
@given(st.lists(route_configs(), min_size=2, max_size=8), METHODS, PATHS)
def test_a_route_covered_by_an_earlier_one_never_matches(
    configs: list[RouteMatchConfig], method: bytes, path: bytes
) -> None:
    compiled = RouteTable([(compile_match(c), i) for i, c in enumerate(configs)])
    covered = {
        later
        for later, config in enumerate(configs)
        if any(earlier.covers(config) for earlier in configs[:later])
    }
    for headers in ([], [(b"x-k", b"1")], [(b"x-k", b"2")]):
        assert compiled.match(method, path, headers) not in covered
