"""Templates, built-in formats, atomic writes and the secrets config: no server."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from pillion.config import PillionConfig
from pillion.config.secrets import TEMPLATE_FILTERS, TemplateConfig
from pillion.render.errors import RenderError
from pillion.render.files import write_atomically
from pillion.render.sources import parse_dotenv, read_directory, read_file
from pillion.render.templates import Renderer, _environment, dotenv

SOURCES: dict[str, dict[str, Any]] = {
    "db": {"username": "app", "password": 'p@ss"w$rd`\\\nline2', "port": 5432},
    "tls": {"certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
}


def template(**fields: Any) -> TemplateConfig:
    return TemplateConfig.model_validate({"name": "t", "destination": "/x/t", **fields})


def test_a_template_sees_sources_and_the_helpers() -> None:
    text = (
        "url=postgres://{{ secrets.db.username }}@db:{{ secrets.db.port }}\n"
        "{{ secrets.db | dotenv }}"
        "{{ secrets.db.username | b64encode }} {{ 'YXBw' | b64decode }}\n"
        "{{ {'a': 1} | json }}\n"
    )
    out = Renderer(template(template=text)).render(SOURCES).decode()
    lines = out.splitlines()
    assert lines[0] == "url=postgres://app@db:5432"
    assert parse_dotenv("\n".join(lines[1:4])) == {k: str(v) for k, v in SOURCES["db"].items()}
    assert "YXBw app" in out
    assert '"a": 1' in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ secrets.db.pasword }}", "template t line 1: 'dict object' has no attribute 'pasword'"),
        ("ok\n{{ secrets.nope.x }}", "template t line 2: 'dict object' has no attribute 'nope'"),
        ("{{ x.__class__.__mro__ }}", "template t line 1: SecurityError"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template t line 1: SecurityError"),
    ],
)
def test_undefined_names_and_sandbox_escapes_are_errors(text: str, expected: str) -> None:
    with pytest.raises(RenderError) as caught:
        Renderer(template(template=text)).render(SOURCES)
    assert str(caught.value).startswith(expected)
    assert "p@ss" not in str(caught.value)


def test_a_syntax_error_names_the_template_and_line() -> None:
    with pytest.raises(RenderError, match=r"^template t: syntax error at line 2: "):
        Renderer(template(template="a\n{% if %}\n"))


def test_formats_render_the_values_never_a_python_repr() -> None:
    as_dotenv = Renderer(template(format="dotenv", source="db")).render(SOURCES).decode()
    assert parse_dotenv(as_dotenv) == {k: str(v) for k, v in SOURCES["db"].items()}
    as_json = Renderer(template(format="json", source="db")).render(SOURCES)
    assert json.loads(as_json) == SOURCES["db"]
    as_yaml = Renderer(template(format="yaml", source="db")).render(SOURCES)
    assert yaml.safe_load(as_yaml) == SOURCES["db"]
    raw = Renderer(template(format="raw", source="tls", key="certificate")).render(SOURCES)
    assert raw.decode() == SOURCES["tls"]["certificate"]
    for rendered in (as_dotenv, as_json.decode(), as_yaml.decode()):
        assert "{'" not in rendered
        assert "map[" not in rendered
    with pytest.raises(RenderError, match="source tls has no key 'key'"):
        Renderer(template(format="raw", source="tls", key="key")).render(SOURCES)
    with pytest.raises(RenderError, match="template t: key 'bad-name' is not a valid env"):
        Renderer(template(format="dotenv", source="x")).render({"x": {"bad-name": "v"}})
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        dotenv({"bad-name": "x"})


def test_writes_are_atomic_with_the_mode_and_only_on_change(tmp_path: Path) -> None:
    path = str(tmp_path / "secret.env")
    os.umask(0o077)
    assert write_atomically(path, b"A=1\n", 0o440)
    assert os.stat(path).st_mode & 0o777 == 0o440
    assert not write_atomically(path, b"A=1\n", 0o440)  # unchanged: not written
    inode = os.stat(path).st_ino
    assert write_atomically(path, b"A=2\n", 0o440)
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    assert write_atomically(path, b"A=2\n", 0o400)  # a mode change rewrites
    assert os.stat(path).st_mode & 0o777 == 0o400


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    contents = [json.dumps({"n": n, "pad": "x" * 200_000}).encode() for n in range(2)]
    write_atomically(str(path), contents[0], 0o600)
    stop = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(200):
        write_atomically(str(path), contents[n % 2], 0o600)
    stop.set()
    reader.join()
    assert seen
    assert all(content in contents for content in seen)


def test_an_unwritable_directory_is_an_error_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(str(tmp_path / "missing" / "x"), b"x", 0o400)


def test_local_sources(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"k": "v"}')
    (tmp_path / "a.yaml").write_text("k: v\n")
    (tmp_path / "a.env").write_text("# c\nexport K='v'\nJ=\"x\\ny\"\n")
    (tmp_path / "a.txt").write_text("text")
    assert read_file(str(tmp_path / "a.json")) == {"k": "v"}
    assert read_file(str(tmp_path / "a.yaml")) == {"k": "v"}
    assert read_file(str(tmp_path / "a.env")) == {"K": "v", "J": "x\ny"}
    assert read_file(str(tmp_path / "a.txt")) == {"content": "text"}
    # a ConfigMap volume: keys are symlinks into ..data, which is skipped
    volume = tmp_path / "cm"
    (volume / "..2026_11_24").mkdir(parents=True)
    (volume / "..2026_11_24" / "app.conf").write_text("x=1\n")
    (volume / "..data").symlink_to("..2026_11_24")
    (volume / "app.conf").symlink_to("..data/app.conf")
    assert read_directory(str(volume)) == {"app.conf": "x=1\n"}


def config(secrets: dict[str, Any], notify: list[Any] | None = None) -> PillionConfig:
    return PillionConfig.model_validate({"app": {"notify": notify or []}, "secrets": secrets})


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"sources": [{"name": "a", "type": "kv", "path": "secret/x"}],
          "templates": [{"name": "t", "destination": "/t", "format": "json", "source": "a"}]},
         "sources a need `vault`"),
        ({"sources": [{"name": "a", "type": "env", "prefix": "A_"}],
          "templates": [{"name": "t", "destination": "/t", "format": "json", "source": "b"}]},
         "no source named b"),
        ({"sources": [{"name": "a", "type": "env", "prefix": "A_"}],
          "templates": [{"name": "t", "destination": "/t", "template": "x", "format": "json",
                         "source": "a"}]},
         "exactly one of template, template_file, format"),
        ({"sources": [{"name": "a", "type": "env", "prefix": "A_"}],
          "templates": [{"name": "t", "destination": "relative", "format": "json",
                         "source": "a"}]},
         "should match pattern"),
        ({"vault": {"address": "http://127.0.0.1:1", "auth": {"method": "approle",
                                                            "role_id_file": "/r"}},
          "sources": [{"name": "a", "type": "env", "prefix": "A_"}],
          "templates": [{"name": "t", "destination": "/t", "format": "json", "source": "a"}]},
         "method approle needs secret_id_file"),
        ({"sources": [{"name": "a", "type": "env", "prefix": "A_"}],
          "templates": [{"name": "t", "destination": "/t", "format": "json", "source": "a",
                         "notify": ["app"]}]},
         "no app.notify target named app"),
    ],
)  # fmt: skip
def test_bad_secrets_config_is_refused(secrets: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(secrets)


def test_a_file_is_rendered_by_one_section_only() -> None:
    both = {
        "secrets": {"sources": [{"name": "a", "type": "env", "prefix": "A_"}],
                    "templates": [{"name": "t", "destination": "/x/f", "format": "json",
                                   "source": "a"}]},
        "config": {"sources": [{"name": "b", "type": "env", "prefix": "B_"}],
                   "templates": [{"name": "u", "destination": "/x/f", "format": "json",
                                  "source": "b"}]},
    }  # fmt: skip
    with pytest.raises(ValidationError, match="/x/f is also a secrets template's") as caught:
        PillionConfig.model_validate(both)
    assert caught.value.errors()[0]["loc"] == ("config", "templates", 0, "destination")


def test_owner_and_group_are_set(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "make test runs as root, as CI does"
    path = str(tmp_path / "owned")
    assert write_atomically(path, b"x", 0o440, owner=1234, group=2345)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 2345, 0o440)
    assert not write_atomically(path, b"x", 0o440, owner=1234, group=2345)
    assert write_atomically(path, b"x", 0o440, owner=1234, group=3456)  # a new group rewrites
    assert os.stat(path).st_gid == 3456


def test_the_config_check_knows_every_filter_the_renderer_adds() -> None:
    added = set(_environment().filters) - set(SandboxedEnvironment().filters)
    assert added == set(TEMPLATE_FILTERS)
