"""StatsD line parsing, without sockets: every type, rates, tag dialects, garbage."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillion.exporters.statsd_parse import (
    RawSample,
    decode_packet,
    label_name,
    metric_name,
    observations,
    parse_name,
    parse_rate,
    sample_value,
    split_packet,
)


def split(text: str) -> tuple[list[RawSample], Counter[str]]:
    out: list[RawSample] = []
    drops: Counter[str] = Counter()
    split_packet(text, out, drops)
    return out, drops


@pytest.mark.parametrize(
    ("line", "sample"),
    [
        ("hits:1|c", ("hits", "1", "c", 1.0, "")),
        ("temp:21.5|g", ("temp", "21.5", "g", 1.0, "")),
        ("temp:+3|g", ("temp", "+3", "g", 1.0, "")),
        ("temp:-3|g", ("temp", "-3", "g", 1.0, "")),
        ("db.query:320|ms", ("db.query", "320", "ms", 1.0, "")),
        ("size:1024|h", ("size", "1024", "h", 1.0, "")),
        ("size:1024|d", ("size", "1024", "d", 1.0, "")),
        ("users:alice|s", ("users", "alice", "s", 1.0, "")),
        ("hits:1|c|@0.1", ("hits", "1", "c", 0.1, "")),
        ("hits:1|c|@1", ("hits", "1", "c", 1.0, "")),
        ("hits:1|c|#env:prod", ("hits", "1", "c", 1.0, "#env:prod")),
        ("hits:1|c|@0.5|#env:prod", ("hits", "1", "c", 0.5, "#env:prod")),
        ("hits:1|c|#env:prod|@0.5", ("hits", "1", "c", 0.5, "#env:prod")),
        ("hits:1|c|#a:b|#c:d", ("hits", "1", "c", 1.0, "#a:b,c:d")),
        ("hits:1|c|#|#c:d", ("hits", "1", "c", 1.0, "#c:d")),
        ("hits:1|c|#", ("hits", "1", "c", 1.0, "#")),
        ("hits:1|c|#env:prod|c:4f2a", ("hits", "1", "c", 1.0, "#env:prod")),
        ("hits:1|c|#env:prod|c:sha256:4f2a", ("hits", "1", "c", 1.0, "#env:prod")),
        ("hits:1|c|T1656581400", ("hits", "1", "c", 1.0, "")),
        ("hits:1|c|Tsoon", ("hits", "1", "c", 1.0, "")),
        ("hits:1|c|@0.1|#k:v|c:id|T1656581400", ("hits", "1", "c", 0.1, "#k:v")),
        ("hits,env=prod:1|c", ("hits,env=prod", "1", "c", 1.0, "")),
        ("  hits:1|c \r", ("hits", "1", "c", 1.0, "")),
    ],
)
def test_every_type_and_option(line: str, sample: RawSample) -> None:
    assert split(line) == ([sample], Counter())


def test_several_lines_and_empty_lines() -> None:
    samples, drops = split("a:1|c\n\nb:2|g\r\n\n\nc:3|ms\n")
    assert [s[0] for s in samples] == ["a", "b", "c"]
    assert drops == Counter()


def test_several_values_on_one_line() -> None:
    samples, drops = split("multi:1|c:2|c|@0.5:3|ms")
    assert samples == [
        ("multi", "1", "c", 1.0, ""),
        ("multi", "2", "c", 0.5, ""),
        ("multi", "3", "ms", 1.0, ""),
    ]
    assert drops == Counter()


def test_a_bad_value_among_several_drops_only_itself() -> None:
    samples, drops = split("multi:1|c:oops:3|g")
    assert [s[1] for s in samples] == ["1", "3"]
    assert drops == Counter(malformed=1)


def test_dogstatsd_tags_turn_off_several_values() -> None:
    # the tag value holds ':' so the line cannot be split on it
    samples, drops = split("t:1|c|#url:http://x")
    assert samples == [("t", "1", "c", 1.0, "#url:http://x")]
    assert drops == Counter()


@pytest.mark.parametrize(
    ("line", "samples"),
    [
        ("t:0.5:120:3000|ms", [("t", v, "ms", 1.0, "") for v in ("0.5", "120", "3000")]),
        ("t:1:2|h|@0.5", [("t", v, "h", 0.5, "") for v in ("1", "2")]),
        ("t:1:2|d|@0.5|#a:b", [("t", v, "d", 0.5, "#a:b") for v in ("1", "2")]),
        ("t:1:2|ms|#url:http://x", [("t", v, "ms", 1.0, "#url:http://x") for v in ("1", "2")]),
        ("t[a=b]x:1:2|ms", [("t[a=b]x", v, "ms", 1.0, "") for v in ("1", "2")]),
    ],
)
def test_extended_aggregation_makes_one_sample_per_value(
    line: str, samples: list[RawSample]
) -> None:
    assert split(line) == (samples, Counter())


def test_an_empty_value_in_an_aggregation_drops_only_itself() -> None:
    samples, drops = split("t:1::2|ms")
    assert [s[1] for s in samples] == ["1", "2"]
    assert drops == Counter(malformed=1)


def test_a_container_id_without_dogstatsd_tags_splits_as_several_values() -> None:
    # `c:id` then reads as a second value, as statsd_exporter reads it: both refused
    assert split("hits:1|c|c:id") == ([], Counter(malformed=2))


def test_decode_packet_drops_only_lines_that_are_not_utf8() -> None:
    drops: Counter[str] = Counter()
    text = decode_packet(
        b"a:1|c\ninvalid\xc3\x28utf8:1|c\nb:1|c|#t:\xc3\x28\nc:1|c|#t:\xef\xbf\xbd", drops
    )
    assert text == "a:1|c\nc:1|c|#t:\ufffd"  # an encoded U+FFFD is valid UTF-8
    assert drops == Counter(invalid_utf8=2)
    assert decode_packet(b"a:1|c", drops) == "a:1|c"


@given(st.binary(max_size=300))
def test_any_bytes_decode_and_split_without_raising(data: bytes) -> None:
    drops: Counter[str] = Counter()
    out: list[RawSample] = []
    split_packet(decode_packet(data, drops), out, drops)
    assert set(drops) <= {"malformed", "sample_rate", "invalid_utf8"}


@pytest.mark.parametrize(
    "rate", ["@0", "@-1", "@abc", "@2", "@", "@nan", "@inf", "@1.5", "@0.5|@0.5", "@1|@bar"]
)
def test_invalid_sample_rates_drop_the_sample(rate: str) -> None:
    samples, drops = split(f"hits:1|c|{rate}\nok:1|c")
    assert [s[0] for s in samples] == ["ok"]
    assert drops == Counter(sample_rate=1)


@pytest.mark.parametrize(
    "line",
    [
        "no_colon",
        ":1|c",
        "name:",
        "name:1",
        "name:1|",
        "name:1|x",
        "name:1|C",
        "name:|c",
        "name:1|c|",
        "name:1|c|bogus",
        "name:1|c|c",  # a container ID field without the ID
        "name:1|c|c:",
        "name:1|c|#a:b|c:id|T1|x",  # seven fields
        "name:1|c|#a:b||T1",  # an empty field
        "name:1:2|c",  # several values, one type: only ms, h, d
        "name:1:2|g|#t:v",
        "name:1:2",
        "name:1|ms|c",
        "|||",
        "\x00\x01\x02",
        "name:1|c:2|c|#t:v",  # several values with DogStatsD tags: type `c:2`
    ],
)
def test_garbage_lines_are_counted_and_skipped(line: str) -> None:
    samples, drops = split(f"{line}\nok:1|c")
    assert [s[0] for s in samples] == ["ok"]
    assert sum(drops.values()) >= 1
    assert set(drops) == {"malformed"}


def test_a_packet_cut_short_loses_only_its_last_line() -> None:
    whole = "a:1|c\nb:2|ms\nc:3|g"
    for cut in range(len(whole)):
        samples, drops = split(whole[:cut])
        names = [s[0] for s in samples]
        complete = whole[:cut].count("\n")
        assert names[:complete] == ["a", "b"][:complete]
        assert len(names) <= complete + 1
        assert set(drops) <= {"malformed"}


def test_fed_whole_or_line_by_line_gives_the_same() -> None:
    packet = "a:1|c\nb,x=1:2|g\nc#y=2:3|ms|@0.5\nd[z=3]:4|h|#k:v\ne:v|s"
    whole, _ = split(packet)
    by_line = [sample for line in packet.split("\n") for sample in split(line)[0]]
    assert whole == by_line
    assert split(packet + "\n\n")[0] == whole  # trailing newlines change nothing


@pytest.mark.parametrize(
    ("head", "tags", "name", "labels"),
    [
        ("plain", "", "plain", {}),
        ("dog", "#env:prod,region:eu", "dog", {"env": "prod", "region": "eu"}),
        ("dog", "#env:prod,#region:eu", "dog", {"env": "prod", "region": "eu"}),
        ("dog", "#", "dog", {}),
        ("sfx[]name", "", "sfxname", {}),
        ("sfx[a=1],b=2", "", "sfx,b=2", {"a": "1"}),  # no second dialect after SignalFX
        ("influx,env=prod,region=eu", "", "influx", {"env": "prod", "region": "eu"}),
        ("librato#env=prod,region=eu", "", "librato", {"env": "prod", "region": "eu"}),
        ("signalfx[env=prod,region=eu]", "", "signalfx", {"env": "prod", "region": "eu"}),
        ("signal.[env=prod]fx", "", "signal.fx", {"env": "prod"}),
        ("dog", "#url:http://x:80/y", "dog", {"url": "http://x:80/y"}),
        ("dog", "#a:1,b:2,", "dog", {"a": "1", "b": "2"}),
        ("dog", "#a:1,a:2", "dog", {"a": "2"}),
        (
            "dog",
            "#app-name:x,1st:y,app--id:z",
            "dog",
            {"app_name": "x", "_1st": "y", "app_id": "z"},
        ),
        ("dog", "#ünï:x", "dog", {"_n_": "x"}),
    ],
)
def test_tag_dialects(head: str, tags: str, name: str, labels: dict[str, str]) -> None:
    assert parse_name(head, tags) == (name, labels, 0, "")


@pytest.mark.parametrize(
    ("head", "tags", "kept", "dropped"),
    [
        ("dog", "#production,env:prod", {"env": "prod"}, 1),  # a tag without a value
        ("dog", "#:value", {}, 1),  # no key
        ("dog", "#empty:", {}, 1),  # no value
        ("dog", "#__name__:x", {}, 1),  # reserved
        ("dog", "#a:1,,b:2", {"a": "1", "b": "2"}, 1),  # an empty tag (not a trailing comma)
        ("influx,novalue,a=1", "", {"a": "1"}, 1),
        ("sfx[=x,b=2]", "", {"b": "2"}, 1),
        ("sfx[a,b]name", "", {}, 2),
    ],
)
def test_unusable_tags_are_dropped_and_counted(
    head: str, tags: str, kept: dict[str, str], dropped: int
) -> None:
    _, labels, left_out, problem = parse_name(head, tags)
    assert problem == ""
    assert labels == kept
    assert left_out == dropped


@pytest.mark.parametrize("head", ["sfx[a=b,c=d", "a=b,c=d]sfx", "[a=b,c=d"])
def test_a_lone_signalfx_bracket_keeps_the_whole_name(head: str) -> None:
    # not read as InfluxDB tags either: the commas stay in the name
    assert parse_name(head, "") == (head, {}, 1, "")


@pytest.mark.parametrize("head", ["mixed,a=1", "mixed#a=1", "mixed[a=1]", "mixed[a=1]x"])
def test_tags_in_the_name_and_dogstatsd_tags_are_refused(head: str) -> None:
    assert parse_name(head, "#b:2").problem == "mixed_tags"
    assert parse_name(head, "#").problem == "mixed_tags"  # an empty DogStatsD section too


def test_unusable_name_tags_do_not_make_a_mix() -> None:
    # statsd_exporter only refuses the mix when the name gave labels
    assert parse_name("plain,novalue", "#b:2") == ("plain", {"b": "2"}, 1, "")


@pytest.mark.parametrize(
    ("text", "kind", "rate", "value"),
    [
        ("1", "c", 1.0, 1.0),
        ("3", "c", 0.1, 30.0),
        ("2.5", "c", 0.5, 5.0),
        ("0", "c", 1.0, 0.0),
        ("21.5", "g", 1.0, 21.5),
        ("-4", "g", 0.5, -4.0),  # sample rates never apply to gauges
        ("250", "ms", 1.0, 0.25),
        ("250", "ms", 0.5, 0.25),  # a rate repeats an observation, it does not scale it
        ("1e3", "h", 1.0, 1000.0),
        ("-1.5", "d", 1.0, -1.5),
    ],
)
def test_values(text: str, kind: str, rate: float, value: float) -> None:
    found = sample_value(text, kind, rate)
    assert found is not None
    assert math.isclose(found, value)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("-1", "c"),
        ("abc", "c"),
        ("nan", "g"),
        ("inf", "ms"),
        ("-inf", "h"),
        ("1,5", "g"),
        ("", "c"),
    ],
)
def test_values_that_are_not_numbers_or_not_allowed(text: str, kind: str) -> None:
    assert sample_value(text, kind, 1.0) is None


def test_observations_stand_for_one_over_the_rate() -> None:
    assert observations(1.0) == 1
    assert observations(0.5) == 2
    assert observations(0.1) == 10
    assert observations(0.3) == 3
    assert observations(0.9) == 1
    assert observations(0.35) == 2  # rounded down, as statsd_exporter does
    assert observations(0.01) == 100


def test_parse_rate() -> None:
    assert parse_rate("0.25") == 0.25
    assert parse_rate("1") == 1.0
    for bad in ["0", "-1", "abc", "2", "", "nan", "inf"]:
        assert parse_rate(bad) is None


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("my.app.hits", "my_app_hits"),
        ("my-app/hits", "my_app_hits"),
        ("9lives", "_9lives"),
        ("ok_name:sub", "ok_name:sub"),
        ("ünïcode", "_n_code"),
        ("my--app", "my_app"),  # a run of `-` is one `_`
        ("my---app-x", "my_app_x"),
        ("my..app", "my__app"),  # other characters are replaced one by one
        ("my-.-app", "my___app"),
        ("a--.b", "a__b"),
        ("", ""),
    ],
)
def test_metric_names(raw: str, name: str) -> None:
    assert metric_name(raw) == name


def test_label_names() -> None:
    assert label_name("env") == "env"
    assert label_name("app.name") == "app_name"
    assert label_name("1st") == "_1st"
    assert label_name("") is None
    assert label_name("__reserved") is None
    assert label_name("_ok") == "_ok"
    assert label_name("app--name") == "app_name"
    assert label_name(" padded") == "_padded"  # not stripped


_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@given(st.text(max_size=300))
def test_any_text_splits_without_raising(text: str) -> None:
    samples, drops = split(text)
    for head, value, kind, rate, _ in samples:
        assert head
        assert value
        assert kind in {"c", "g", "ms", "h", "d", "s"}
        assert 0 < rate <= 1
    assert set(drops) <= {"malformed", "sample_rate"}


@given(st.text(max_size=100), st.text(max_size=100))
def test_any_name_and_tags_give_valid_label_names(head: str, tags: str) -> None:
    name, labels, dropped, _ = parse_name(head, tags)
    assert dropped >= 0
    for label in labels:
        assert _LABEL.match(label)
        assert not label.startswith("__")
    assert _METRIC.match(metric_name(name)) or not name


@given(
    st.sampled_from(["c", "g", "ms", "h", "d"]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e12),
    st.floats(min_value=0.001, max_value=1.0),
)
def test_well_formed_lines_round_trip(kind: str, value: float, rate: float) -> None:
    samples, drops = split(f"x.y:{value!r}|{kind}|@{rate!r}")
    assert drops == Counter()
    assert samples == [("x.y", repr(value), kind, rate, "")]
