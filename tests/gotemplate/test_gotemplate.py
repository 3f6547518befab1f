"""Vault Agent templates (Go text/template, consul-template's dialect), rendered
by ``pillion.gotemplate`` byte for byte as Vault Agent renders them.

The templates are written the way HashiCorp's docs and tutorials write them; the
Vault responses are fixtures in Vault's JSON response shape; each expected output
is what Go's text/template, fmt, encoding/json and yaml.v2 write for it."""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pillion import gotemplate
from pillion.gotemplate import GoTemplateError, TemplateExecError, TemplateSyntax, parse

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUd3d3LmV4YW1wbGUuY29t\n-----END CERTIFICATE-----"  # noqa: E501
CA = "-----BEGIN CERTIFICATE-----\nMIIBqTCCAU+gAwIBAgIUZXhhbXBsZS5jb20gQ0E=\n-----END CERTIFICATE-----"  # noqa: E501
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAtZXhhbXBsZS1rZXk=\n-----END RSA PRIVATE KEY-----"  # noqa: E501
PKI_ISSUE = {
    "request_id": "0c7b1b5e-9f0e-4c2b-8f2b-8f4d3c2b1a00",
    "lease_id": "",
    "lease_duration": 0,
    "renewable": False,
    "data": {
        "certificate": CERT,
        "issuing_ca": CA,
        "ca_chain": [CA],
        "private_key": KEY,
        "private_key_type": "rsa",
        "serial_number": "39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0:5b:65:31:58",
        "expiration": 1767225600,
    },
    "warnings": None,
}
COMMON_NAME = (("common_name", "www.example.com"),)

VAULT: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {
    ("database/creds/db-app", ()): {
        "request_id": "8e2d3f51-7b1c-4e0a-9d2f-0c4b5a6e7f80",
        "lease_id": "database/creds/db-app/2f6a614c4aa4",
        "lease_duration": 3600,
        "renewable": True,
        "data": {"username": "v-kubernetes-db-app-k9blx", "password": "A1a-2bC3dE4fG5hI6jK7"},
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    },
    ("secret/data/web", ()): {
        "lease_duration": 0,
        "renewable": False,
        "data": {
            "data": {"username": "web", "password": "s3cr3t!", "api-key": "k-123", "port": 8080},
            "metadata": {
                "created_time": "2024-05-01T10:00:00.000000Z",
                "deletion_time": "",
                "destroyed": False,
                "version": 2,
            },
        },
    },
    ("secret/app", ()): {
        "lease_duration": 2764800,
        "renewable": False,
        "data": {"username": "app", "password": "hunter2"},
    },
    ("secret/data/tls", ()): {
        "data": {
            "data": {"cert": base64.b64encode((CERT + "\n").encode()).decode()},
            "metadata": {"version": 1},
        }
    },
    ("secret/data/flags", ()): {
        "data": {"data": {"enabled": False, "count": 0, "name": "", "ratio": 0.5}}
    },
    ("secret/metadata/apps", ()): {"data": {"keys": ["billing", "web/"]}},
    ("secret/data/yaml", ()): {
        "data": {
            "data": {
                "a": "true",
                "b": "123",
                "c": "",
                "d": "line1\nline2",
                "e": "x: y",
                "f": "plain",
                "g": 8080,
                "h": None,
                "i": ["x", "y"],
                "j": {},
                "k": " lead",
                "l": "2024-05-01",
                "m": "yes",
                "n": "0x1F",
                "o": "1.5",
                "p": "-",
                "q": "a #b",
                "r": "tab\there",
                "s": "multi\n",
                "t": "last",
                "u": {"z": 1, "y": [{"a": 1, "b": "c"}]},
            }
        }
    },
    ("pki/issue/example-dot-com", COMMON_NAME): PKI_ISSUE,
    ("pki/issue/example-dot-com", (*COMMON_NAME, ("ttl", "24h"))): PKI_ISSUE,
    ("auth/token/create", (("policies", "web"),)): {
        "auth": {
            "client_token": "hvs.CAESIJ2",
            "accessor": "nJ7fU3",
            "policies": ["default", "web"],
            "lease_duration": 3600,
            "renewable": True,
        }
    },
}


class VaultDown(Exception):
    pass


class FakeVault:
    """The fetcher: Vault's JSON responses by (path, params); records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, path: str, params: Mapping[str, str]) -> Mapping[str, Any]:
        self.calls.append((path, dict(params)))
        key = (path, tuple(sorted(params.items())))
        if key not in VAULT:
            raise VaultDown(path)
        return VAULT[key]


def render(text: str, env: Mapping[str, str] | None = None, **options: Any) -> str:
    return parse(text).render(FakeVault(), env, **options)


def case(template: str, expected: str, id: str) -> Any:
    return pytest.param(template, expected, id=id)


# ---------------------------------------------------------------- HashiCorp's templates

DOCS = [
    case(
        '{{- with secret "database/creds/db-app" -}} postgres://{{ .Data.username }}:'
        "{{ .Data.password }}@postgres:5432/wizard {{- end }}",
        "postgres://v-kubernetes-db-app-k9blx:A1a-2bC3dE4fG5hI6jK7@postgres:5432/wizard",
        "tutorial-db-creds",
    ),
    case(
        '{{- with secret "database/creds/db-app" -}}\n'
        "postgres://{{ .Data.username }}:{{ .Data.password }}@postgres:5432/wizard\n"
        "{{- end }}\n",
        "postgres://v-kubernetes-db-app-k9blx:A1a-2bC3dE4fG5hI6jK7@postgres:5432/wizard\n",
        "tutorial-db-creds-annotation-block",
    ),
    case(
        '{{- with secret "secret/data/web" -}}\n'
        "postgresql://{{ .Data.data.username }}:{{ .Data.data.password }}@postgres:5432/wizard\n"
        "{{- end -}}\n",
        "postgresql://web:s3cr3t!@postgres:5432/wizard",
        "injector-docs-kv2-database-config",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ range $k, $v := .Data.data }}'
        'export {{ $k }}="{{ $v }}"\n{{ end }}{{ end }}',
        'export api-key="k-123"\nexport password="s3cr3t!"\nexport port="8080"\n'
        'export username="web"\n',
        "kv2-export-env",
    ),
    case(
        '{{- with secret "secret/data/web" -}}\n'
        "{{- range $k, $v := .Data.data }}\n"
        '{{ $k }}="{{ $v }}"\n'
        "{{- end }}\n"
        "{{- end }}",
        '\napi-key="k-123"\npassword="s3cr3t!"\nport="8080"\nusername="web"',
        "kv2-range-trimmed",
    ),
    case(
        '{{ with secret "secret/data/web" -}}\n'
        "username={{ .Data.data.username }}\n"
        "password={{ .Data.data.password }}\n"
        "{{- end }}",
        "username=web\npassword=s3cr3t!",
        "kv2-lines",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ .Data.data | toJSON }}{{ end }}',
        '{"api-key":"k-123","password":"s3cr3t!","port":8080,"username":"web"}',
        "kv2-toJSON",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ .Data.metadata | toJSONPretty }}{{ end }}',
        '{\n  "created_time": "2024-05-01T10:00:00.000000Z",\n  "deletion_time": "",\n'
        '  "destroyed": false,\n  "version": 2\n}',
        "kv2-toJSONPretty",
    ),
    case(
        '{{ with secret "secret/data/tls" }}{{ base64Decode .Data.data.cert }}{{ end }}',
        CERT + "\n",
        "base64Decode",
    ),
    case(
        '{{ with secret "database/creds/db-app" }}'
        '{{ printf "%s:%s" .Data.username .Data.password }}{{ end }}',
        "v-kubernetes-db-app-k9blx:A1a-2bC3dE4fG5hI6jK7",
        "printf-credentials",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ if .Data.data.password }}'
        'password = "{{ .Data.data.password }}"{{ else }}no password{{ end }}{{ end }}',
        'password = "s3cr3t!"',
        "if-guard",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ if .Data.data.token }}{{ .Data.data.token }}'
        "{{ else }}no token{{ end }}{{ end }}",
        "no token",
        "if-else-missing-key",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ if eq .Data.data.username "admin" }}admin'
        '{{ else if eq .Data.data.username "web" }}web user{{ else }}other{{ end }}{{ end }}',
        "web user",
        "else-if",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ with .Data.metadata }}version {{ .version }}'
        "{{ end }}{{ end }}",
        "version 2",
        "nested-with",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ with .Data.data.token }}{{ . }}{{ else }}none'
        "{{ end }}{{ end }}",
        "none",
        "with-else",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ with secret "database/creds/db-app" }}'
        "{{ .Data.username }}{{ end }}/{{ .Data.data.username }}{{ end }}",
        "v-kubernetes-db-app-k9blx/web",
        "nested-secrets",
    ),
    case(
        '{{ with secret "secret/app" }}{{ .Data.username }} {{ .LeaseDuration }}{{ end }}',
        "app 2764800",
        "kv1",
    ),
    case(
        '{{ with pkiCert "pki/issue/example-dot-com" "common_name=www.example.com" }}'
        "{{ .Cert }}{{ .CA }}{{ .Key }}{{ end }}",
        f"{CERT}\n{CA}\n{KEY}\n",
        "pkiCert",
    ),
    case(
        '{{- with pkiCert "pki/issue/example-dot-com" "common_name=www.example.com" -}}\n'
        "{{ .Data.certificate }}|{{ .Data.private_key }}|{{ .Data.issuing_ca }}|"
        "{{ .Data.Cert }}{{ .CAChain }}\n"
        "{{- end }}",
        f"{CERT}|{KEY}|{CA}|{CERT}\n[{CA}\n]",
        "pkiCert-data",
    ),
    case(
        '{{ with secret "pki/issue/example-dot-com" "common_name=www.example.com" "ttl=24h" }}'
        "{{ .Data.certificate }}\n{{ .Data.private_key }}{{ end }}",
        f"{CERT}\n{KEY}",
        "secret-write-pki",
    ),
    case(
        '{{ with secret "auth/token/create" "policies=web" }}{{ .Auth.ClientToken }} '
        "{{ .Auth.Policies }} {{ .Auth.Renewable }}{{ end }}",
        "hvs.CAESIJ2 [default web] true",
        "secret-write-token",
    ),
    case(
        '{{ with secret "secret/metadata/apps" }}{{ range .Data.keys }}{{ . }}\n{{ end }}{{ end }}',
        "billing\nweb/\n",
        "range-keys-dot",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ index .Data.data "api-key" }}{{ end }}',
        "k-123",
        "index-dashed-key",
    ),
    case(
        '{{ with $s := secret "database/creds/db-app" }}{{ $s.Data.username }}{{ end }}',
        "v-kubernetes-db-app-k9blx",
        "with-variable",
    ),
    case(
        '{{ $db := secret "database/creds/db-app" }}{{ $db.LeaseID }} {{ $db.Renewable }}',
        "database/creds/db-app/2f6a614c4aa4 true",
        "declared-secret",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ .Data.data.username | toUpper | printf "USER=%s" }}'
        "{{ end }}",
        "USER=WEB",
        "pipeline",
    ),
]


@pytest.mark.parametrize(("template", "expected"), DOCS)
def test_hashicorp_templates(template: str, expected: str) -> None:
    assert render(template) == expected


# ---------------------------------------------------------------- the language

LANGUAGE = [
    case("a  \n {{- 1 -}} \n\t b", "a1b", "trim-both-sides-all-whitespace"),
    case("x {{-3}}", "x -3", "minus-number-is-not-a-trim"),
    case("{{3 -}} x", "3x", "trim-right"),
    case("x \n{{- /* comment */ -}}\n y", "xy", "trimmed-comment"),
    case("a{{/* a\nmulti-line comment */}}b", "ab", "comment"),
    case("{{ `raw\n\\n` }}", "raw\n\\n", "raw-string"),
    case('{{ "tab\\there \\u00e9\\x41\\101" }}', "tab\there éAA", "string-escapes"),
    case("{{ 'a' }} {{ 0x1F }} {{ 0777 }} {{ 1_000 }} {{ -7 }}", "97 31 511 1000 -7", "ints"),
    case(
        "{{ 1.5 }} {{ 1e6 }} {{ 1e3 }} {{ 123456.0 }} {{ 0.0001 }}",
        "1.5 1e+06 1000 123456 0.0001",
        "floats",
    ),
    case(
        "{{ true }} {{ false }} {{ . }} {{ $ }} {{ .Foo.Bar }}",
        "true false <no value> <no value> <no value>",
        "constants-and-nil-data",
    ),
    case('{{ $u := "x" }}{{ $u }}{{ $u = "y" }}{{ $u }}', "xy", "declare-assign"),
    case('{{ with secret "secret/app" }}{{ $ }}{{ end }}', "<no value>", "root-is-nil-data"),
    case('{{ $x := "out" }}{{ if 1 }}{{ $x := "in" }}{{ $x }}{{ end }}{{ $x }}', "inout", "scopes"),
    case('{{ $x := "a" }}{{ range 2 }}{{ $x = "b" }}{{ end }}{{ $x }}', "b", "assign-in-range"),
    case("{{ range 3 }}{{ . }}{{ end }}", "012", "range-int"),
    case(
        '{{ range $i, $e := split "," "a,b" }}{{ $i }}={{ $e }};{{ end }}',
        "0=a;1=b;",
        "range-index",
    ),
    case('{{ range $e := split "," "a,b" }}{{ $e }}{{ end }}', "ab", "range-one-variable"),
    case('{{ range split "," "" }}x{{ else }}empty{{ end }}', "empty", "range-else"),
    case(
        '{{ with secret "secret/data/web" }}{{ range .Data.data.nokey }}x{{ else }}none{{ end }}'
        "{{ end }}",
        "none",
        "range-over-missing",
    ),
    case(
        '{{ range $i, $e := split "," "a,b,c,d" }}{{ if eq $e "b" }}{{ continue }}{{ end }}'
        '{{ if eq $e "d" }}{{ break }}{{ end }}{{ $e }}{{ end }}',
        "ac",
        "break-continue",
    ),
    case('{{ "a,b,c" | split "," | join ";" }}', "a;b;c", "pipe-split-join"),
    case('{{ (split "," "a,b") | len }}', "2", "parenthesized"),
    case('{{ env "POD_NAMESPACE" }}/{{ env "UNSET" }}', "shop/", "env"),
    # printing values as Go prints them
    case(
        '{{ with secret "secret/data/web" }}{{ .Data.data }}{{ end }}',
        "map[api-key:k-123 password:s3cr3t! port:8080 username:web]",
        "print-map",
    ),
    case('{{ split "," "a,b" }} {{ split "," "" }}', "[a b] []", "print-list"),
    case(
        '{{ with secret "secret/data/web" }}{{ .Data.data.nokey }}{{ end }}',
        "<no value>",
        "print-missing-key",
    ),
    case(
        '{{ with secret "database/creds/db-app" }}{{ .Renewable }} {{ .LeaseDuration }} '
        "{{ .Warnings }} {{ .Auth }} {{ .WrapInfo }}{{ end }}",
        "true 3600 [] <nil> <nil>",
        "print-secret-fields",
    ),
    case(
        '{{ parseJSON "{\\"a\\":null,\\"b\\":[1,\\"x\\",2.5]}" }}',
        "map[a:<nil> b:[1 x 2.5]]",
        "print-nested-nil",
    ),
    # truth
    case(
        '{{ if "" }}t{{ else }}f{{ end }}{{ if "x" }}t{{ else }}f{{ end }}'
        "{{ if 0 }}t{{ else }}f{{ end }}{{ if 1 }}t{{ else }}f{{ end }}"
        "{{ if 0.0 }}t{{ else }}f{{ end }}{{ if false }}t{{ else }}f{{ end }}"
        '{{ if split "," "" }}t{{ else }}f{{ end }}{{ if parseJSON "{}" }}t{{ else }}f{{ end }}'
        '{{ if parseJSON "{\\"a\\":1}" }}t{{ else }}f{{ end }}'
        '{{ if secret "secret/app" }}t{{ else }}f{{ end }}',
        "ftftfffftt",
        "truth",
    ),
    case(
        '{{ with secret "secret/data/flags" }}{{ if .Data.data.enabled }}t{{ else }}f{{ end }}'
        "{{ if .Data.data.count }}t{{ else }}f{{ end }}{{ if .Data.data.name }}t{{ else }}f"
        "{{ end }}{{ if .Data.data.nokey }}t{{ else }}f{{ end }}{{ end }}",
        "ftff",
        "truth-of-vault-data-json-number-zero-is-text",
    ),
    # comparisons and logic
    case(
        '{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ ne "a" "b" }} {{ lt 1 2 }} {{ le 2 2 }} '
        '{{ gt "b" "a" }} {{ ge 1.5 2.5 }}',
        "true true true true true true false",
        "comparisons",
    ),
    case(
        '{{ and 1 "x" }} {{ and 1 0 "x" }} {{ or 0 "" }} {{ or 0 "y" }} {{ not 0 }} {{ not "x" }}',
        "x 0  y true false",
        "and-or-not",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ eq .Data.data.port "8080" }} '
        '{{ eq .Data.data.nokey "x" }} {{ len .Data.data }} {{ len .Data.data.username }}'
        "{{ end }}",
        "true false 4 3",
        "comparisons-on-vault-data",
    ),
    case("{{ if and (eq .Foo nil) (not .Bar) }}nil data{{ end }}", "nil data", "and-with-parens"),
    case(
        '{{ len "héllo" }} {{ index "abc" 1 }} {{ index (split "," "a,b,c") 2 }} '
        '{{ index (parseJSON "{\\"a\\":{\\"b\\":\\"c\\"}}") "a" "b" }}',
        "6 98 c c",
        "len-index",
    ),
    case('{{ print "a" 1 2 "b" 3.5 true }}', "a1 2b3.5 true", "print-spacing"),
    case('{{ println "a" 1 }}{{ print }}', "a 1\n", "println"),
]


@pytest.mark.parametrize(("template", "expected"), LANGUAGE)
def test_the_language(template: str, expected: str) -> None:
    assert render(template, {"POD_NAMESPACE": "shop"}) == expected


PRINTF = [
    case('{{ printf "%d|%5d|%-5d|%05d" 42 42 42 42 }}', "42|   42|42   |00042", "ints"),
    case('{{ printf "%x|%X|%o|%b|%#x|%#o" 255 255 8 5 255 8 }}', "ff|FF|10|101|0xff|010", "bases"),
    case(
        '{{ printf "%s|%q|%x|%X|%10s|%-10s|%.2s" "hi" "a\\"b" "hi" "hi" "right" "left" "abc" }}',
        'hi|"a\\"b"|6869|6869|     right|left      |ab',
        "strings",
    ),
    case(
        '{{ printf "%f|%.2f|%8.3f|%-8.1f|%e|%E|%g|%.3g" 3.14159 3.14159 3.14159 2.5 '
        "1234.5678 1234.5678 0.000012345 1234.5678 }}",
        "3.141590|3.14|   3.142|2.5     |1.234568e+03|1.234568E+03|1.2345e-05|1.23e+03",
        "floats",
    ),
    case(
        '{{ printf "%v|%v|%v|%v|%v|%v" 1.0 1e6 123456.0 0.0001 1e-5 123456789.0 }}',
        "1|1e+06|123456|0.0001|1e-05|1.23456789e+08",
        "float-v",
    ),
    case('{{ printf "%v %v %v" true "s" 7 }}', "true s 7", "v"),
    case('{{ printf "%t|%c|%U|%q|%%" true 65 233 65 }}', "true|A|U+00E9|'A'|%", "char-verbs"),
    case('{{ printf "%+d|% d|%+.1f|%08.3f" 5 5 2.25 -3.14159 }}', "+5| 5|+2.2|-003.142", "flags"),
    case('{{ printf "%[2]s-%[1]s" "a" "b" }}', "b-a", "arg-index"),
    case('{{ printf "%*d|%-*d|" 5 42 5 42 }}', "   42|42   |", "star-width"),
    case('{{ printf "%6.2f%%" 99.5 }}', " 99.50%", "percent"),
    case('{{ printf "%x|%.3x" "héllo" "hello" }}', "68c3a96c6c6f|68656c", "hex-bytes"),
    case('{{ printf "%d" "x" }}', "%!d(string=x)", "bad-verb"),
    case('{{ printf "%s" 42 }}', "%!s(int=42)", "bad-verb-int"),
    case('{{ printf "%s %s" "a" }}', "a %!s(MISSING)", "missing-arg"),
    case('{{ printf "%s" "a" "b" }}', "a%!(EXTRA string=b)", "extra-arg"),
    case('{{ printf "%z" 1 }}', "%!z(int=1)", "unknown-verb"),
    case('{{ printf "%" }}', "%!(NOVERB)", "no-verb"),
    case(
        '{{ with secret "secret/data/web" }}{{ printf "%d|%s|%v|%v|%s|%T|%T" .Data.data.port '
        ".Data.data.port .Data.data.port .Data.data.nokey .Data.data.nokey .Data.data "
        ".Data.data.port }}{{ end }}",
        "%!d(json.Number=8080)|8080|8080|<nil>|%!s(<nil>)|map[string]interface {}|json.Number",
        "vault-data",
    ),
    case(
        '{{ printf "%v|%q|%5s|" (split "," "a,b") (split "," "a,b") (split "," "a,b") }}',
        '[a b]|["a" "b"]|[    a     b]|',
        "lists",
    ),
    case('{{ "x" | printf "%s-%s" "y" }}', "y-x", "piped-last-argument"),
]


@pytest.mark.parametrize(("template", "expected"), PRINTF)
def test_printf_is_go_fmt(template: str, expected: str) -> None:
    assert render(template) == expected


FUNCTIONS = [
    case('{{ base64Encode "hello" }} {{ base64Decode "aGVsbG8=" }}', "aGVsbG8= hello", "base64"),
    case('{{ base64URLEncode "??>" }} {{ base64URLDecode "Pz8-" }}', "Pz8- ??>", "base64url"),
    case(
        '{{ toUpper "web" }} {{ toLower "WeB" }} {{ trimSpace "  a b \\n" }}', "WEB web a b", "case"
    ),
    case(
        '{{ replaceAll "-" "_" "a-b-c" }} {{ "a-b" | replaceAll "-" "+" }}',
        "a_b_c a+b",
        "replaceAll",
    ),
    case(
        '{{ contains "b" "abc" }} {{ "abc" | contains "x" }} {{ contains "x" (split "," "a,x") }}',
        "true false true",
        "contains",
    ),
    case('{{ split "," " a,b " }} {{ split "" "ab" }}', "[a b] [a b]", "split"),
    case(
        '{{ trim "-" "--a--" }} {{ trimPrefix "v" "v1.2" }} {{ trimSuffix ".pem" "a.pem" }}',
        "a 1.2 a",
        "trim",
    ),
    case('{{ "a\\n\\nb" | indent 2 }}', "  a\n\n  b", "indent"),
    case('{{ sha256Hex "abc" }}', hashlib.sha256(b"abc").hexdigest(), "sha256Hex"),
    case(
        '{{ toJSON "<a&b>\\n\\"" }} {{ toUnescapedJSON "<a&b>" }} {{ toJSON (split "," "a,b") }}',
        '"\\u003ca\\u0026b\\u003e\\n\\"" "<a&b>" ["a","b"]',
        "toJSON-escaping",
    ),
    case(
        '{{ toJSONPretty (parseJSON "{\\"a\\":[],\\"b\\":{},\\"c\\":[1,2.5]}") }}',
        '{\n  "a": [],\n  "b": {},\n  "c": [\n    1,\n    2.5\n  ]\n}',
        "toJSONPretty-empty-and-nested",
    ),
    case(
        '{{ with secret "secret/data/yaml" }}{{ .Data.data | toYAML }}{{ end }}',
        'a: "true"\n'
        'b: "123"\n'
        'c: ""\n'
        "d: |-\n  line1\n  line2\n"
        "e: 'x: y'\n"
        "f: plain\n"
        "g: 8080\n"
        "h: null\n"
        'i:\n- x\n- "y"\n'
        "j: {}\n"
        "k: ' lead'\n"
        'l: "2024-05-01"\n'
        'm: "yes"\n'
        '"n": "0x1F"\n'
        'o: "1.5"\n'
        "p: '-'\n"
        "q: 'a #b'\n"
        'r: "tab\\there"\n'
        "s: |\n  multi\n"
        "t: last\n"
        'u:\n  "y":\n  - a: 1\n    b: c\n  z: 1',
        "toYAML",
    ),
    case(
        '{{ "multi\\nline" | toYAML }} {{ split "," "a,b" | toYAML }}',
        "|-\n  multi\n  line - a\n- b",
        "toYAML-top",
    ),
]


@pytest.mark.parametrize(("template", "expected"), FUNCTIONS)
def test_functions(template: str, expected: str) -> None:
    assert render(template) == expected


def test_pki_parameters_and_fetches() -> None:
    vault = FakeVault()
    template = parse(
        '{{ with secret "pki/issue/example-dot-com" "common_name=www.example.com" " ttl = 24h" }}'
        "{{ .Data.serial_number }}{{ end }}"
        '{{ with secret "database/creds/db-app" }}{{ .Data.username }}{{ end }}'
        '{{ with secret "database/creds/db-app" }}{{ .Data.password }}{{ end }}'
    )
    assert template.render(vault) == (
        "39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0:5b:65:31:58"
        "v-kubernetes-db-app-k9blxA1a-2bC3dE4fG5hI6jK7"
    )
    # consul-template trims each pair; a secret used twice is fetched once a render
    assert vault.calls == [
        ("pki/issue/example-dot-com", {"common_name": "www.example.com", "ttl": "24h"}),
        ("database/creds/db-app", {}),
    ]


# ---------------------------------------------------------------- missing keys


def test_missing_keys_print_no_value_by_default_as_vault_agent_does() -> None:
    text = '{{ with secret "secret/data/web" }}[{{ .Data.data.nokey }}]{{ end }}'
    assert render(text) == "[<no value>]"


def test_error_on_missing_key() -> None:
    with pytest.raises(TemplateExecError) as error:
        render(
            '{{ with secret "secret/data/web" }}\n{{ .Data.data.nokey }}{{ end }}',
            error_on_missing_key=True,
        )
    assert str(error.value) == 'line 2: map has no entry for key "nokey"'
    assert error.value.line == 2
    with pytest.raises(TemplateExecError, match='nil data; no entry for key "Foo"'):
        render("{{ .Foo }}", error_on_missing_key=True)
    # as in Go, index is not affected; keys that exist render as usual
    text = (
        '{{ with secret "secret/data/web" }}{{ index .Data.data "nokey" }} '
        "{{ .Data.data.username }}{{ end }}"
    )
    assert render(text, error_on_missing_key=True) == "<no value> web"


# ---------------------------------------------------------------- render errors

EXEC_ERRORS = [
    case(
        '{{ with secret "secret/data/web" }}\n{{ .Data.data.nokey.x }}{{ end }}',
        "line 2: nil pointer evaluating interface {}.x",
        "field-of-nil",
    ),
    case(
        '{{ base64Decode "!!" }}',
        "line 1: error calling base64Decode: illegal base64 data",
        "base64",
    ),
    case(
        '{{ with secret "secret/data/web" }}{{ toUpper .Data.data.port }}{{ end }}',
        "line 1: wrong type for value; expected string; got json.Number",
        "json-number-is-not-a-string",
    ),
    case(
        '{{ secret "secret/app" | toUpper }}',
        "line 1: wrong type for value; expected string; got *dependency.Secret",
        "secret-is-not-a-string",
    ),
    case(
        '{{ range "abc" }}{{ end }}',
        "line 1: range can't iterate over a value of type string",
        "range-string",
    ),
    case(
        '{{ eq 1 "a" }}', "line 1: error calling eq: incompatible types for comparison", "eq-types"
    ),
    case("{{ lt true false }}", "line 1: error calling lt: invalid type for comparison", "lt-bool"),
    case(
        '{{ index (split "," "a") 3 }}',
        "line 1: error calling index: index out of range: 3",
        "index-range",
    ),
    case("{{ len 3 }}", "line 1: error calling len: len of type int", "len-int"),
    case(
        '{{ parseJSON "[1" }}',
        "line 1: error calling parseJSON: the text is not valid JSON",
        "parseJSON",
    ),
    case(
        '{{ with secret "database/creds/db-app" }}{{ .Auth.ClientToken }}{{ end }}',
        "line 1: nil pointer evaluating *dependency.SecretAuth.ClientToken",
        "nil-auth",
    ),
    case(
        "{{ range $i, $e := 3 }}{{ end }}",
        "line 1: can't use an int to iterate over more than one variable",
        "range-int-two-variables",
    ),
    case(
        '{{ range 3000 }}{{ printf "%1000d" 1 }}{{ end }}',
        "line 1: the output is longer than 1048576 bytes",
        "output-bound",
    ),
    case(
        '{{ $x := "0123456789" }}{{ range 30 }}{{ $x = printf "%s%s" $x $x }}{{ end }}',
        "line 1: error calling printf: the result would be longer than 1048576 bytes",
        "doubling-bound",
    ),
    case(
        '{{ $x := printf "%100000s" "" }}{{ replaceAll " " $x $x }}',
        "line 1: error calling replaceAll: the result would be longer than 1048576 bytes",
        "replace-bound",
    ),
]


@pytest.mark.parametrize(("template", "message"), EXEC_ERRORS)
def test_render_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateExecError) as error:
        render(template)
    assert str(error.value) == message
    assert isinstance(error.value, GoTemplateError)


def test_the_steps_are_bounded() -> None:
    with pytest.raises(TemplateExecError, match="took more than 1000 steps"):
        render("{{ range 5000 }}{{ end }}", max_steps=1000)


def test_what_the_fetcher_raises_goes_through_unchanged() -> None:
    with pytest.raises(VaultDown, match="secret/data/nowhere"):
        render('{{ with secret "secret/data/nowhere" }}{{ .Data }}{{ end }}')


def test_env_reads_only_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILLION_TEST_SECRET", "from-the-process")
    assert render('[{{ env "PILLION_TEST_SECRET" }}]') == "[]"
    assert (
        render('[{{ env "PILLION_TEST_SECRET" }}]', {"PILLION_TEST_SECRET": "given"}) == "[given]"
    )


def test_bytes_that_are_not_utf8_are_written_as_they_are() -> None:
    template = parse('{{ base64Decode "/w==" }}{{ "é" }}')
    assert template.render_bytes(FakeVault()) == b"\xff\xc3\xa9"


# ---------------------------------------------------------------- secret paths


def test_secret_paths_are_the_literal_calls_once_each() -> None:
    template = parse(
        '{{ with secret "secret/data/web" }}{{ end }}'
        '{{ if false }}{{ with secret " /secret/data/web/" }}{{ end }}{{ end }}'
        '{{ with pkiCert "pki/issue/example-dot-com" "common_name=www.example.com" "ttl=24h" }}'
        '{{ end }}{{ $db := secret "database/creds/db-app" }}'
    )
    assert template.secret_paths() == [
        ("secret/data/web", {}),
        ("pki/issue/example-dot-com", {"common_name": "www.example.com", "ttl": "24h"}),
        ("database/creds/db-app", {}),
    ]
    assert not template.dynamic_paths
    assert parse(DOCS[0].values[0]).secret_paths() == [("database/creds/db-app", {})]


def test_a_path_built_when_rendering_is_not_a_secret_path() -> None:
    template = parse(
        '{{ with secret (printf "secret/data/%s" (env "APP")) }}{{ .Data.data.username }}{{ end }}'
    )
    assert template.secret_paths() == []
    assert template.dynamic_paths
    vault = FakeVault()
    assert template.render(vault, {"APP": "web"}) == "web"
    assert vault.calls == [("secret/data/web", {})]


# ---------------------------------------------------------------- refused when parsed

SUPPORTED = "(supported: and, base64Decode, "

REFUSED = [
    ('{{ define "x" }}a{{ end }}', 1, "{{define}} is not supported", "define"),
    ('{{ template "x" }}', 1, "{{template}} is not supported", "template"),
    ('{{ block "x" . }}b{{ end }}', 1, "{{block}} is not supported", "block"),
    ('{{ file "/etc/passwd" }}', 1, f'function "file" is not supported {SUPPORTED}', "file"),
    ('{{ key "service/redis/maxconns" }}', 1, 'function "key" is not supported', "key"),
    (
        '{{ range service "web" }}{{ .Address }}{{ end }}',
        1,
        'function "service" is not supported',
        "service",
    ),
    (
        'a\nb\n{{ plugin "/bin/sh" "-c" "id" }}',
        3,
        f'function "plugin" is not supported {SUPPORTED}',
        "plugin",
    ),
    (
        '{{ executeTemplate "x" . }}',
        1,
        'function "executeTemplate" is not supported',
        "executeTemplate",
    ),
    (
        '{{ "x" | writeToFile "/tmp/x" "root" "root" "0644" }}',
        1,
        'function "writeToFile" is not supported',
        "writeToFile",
    ),
    ("{{ timestamp }}", 1, 'function "timestamp" is not supported', "timestamp"),
    ('{{ sprig_upper "x" }}', 1, 'function "sprig_upper" is not supported', "sprig_upper"),
    ('{{ call .Fn "x" }}', 1, 'function "call" is not supported', "call"),
    ("{{ frobnicate }}", 1, f'function "frobnicate" is not defined {SUPPORTED}', "frobnicate"),
    (
        '{{ .Data.Method "x" }}',
        1,
        "method calls are not supported: .Data.Method is given arguments",
        ".Data.Method",
    ),
    (
        '{{ "x" | .Data.Foo }}',
        1,
        "method calls are not supported: .Data.Foo is given arguments",
        ".Data.Foo",
    ),
    ("{{ $x := 1 }}{{ $x 2 }}", 1, "can't give argument to non-function $x", "$x"),
    ("{{ 1+2i }}", 1, "complex number 1+2i is not supported", "1+2i"),
    (
        '{{ with secret "secret/data/web" }}\n{{ .data.password }}{{ end }}',
        2,
        'a secret has no field "data" (it has Auth, Data, LeaseDuration, LeaseID, Renewable, '
        "RequestID, Warnings, WrapInfo)",
        ".data.password",
    ),
    (
        '{{ with $s := secret "a" }}{{ $s.data }}{{ end }}',
        1,
        'a secret has no field "data"',
        "$s.data",
    ),
    ('{{ (secret "a").data }}', 1, 'a secret has no field "data"', '(secret "a").data'),
    (
        '{{ with pkiCert "pki/issue/x" "common_name=a" }}{{ .Certificate }}{{ end }}',
        1,
        'a pkiCert certificate has no field "Certificate" (it has CA, CAChain, Cert, Data, Key)',
        ".Certificate",
    ),
    ("{{ secret }}", 1, 'secret needs a path, e.g. secret "secret/data/app"', "secret"),
    ('{{ secret "a" "ttl" }}', 1, "secret: argument 2 is not a key=value pair", "secret"),
    ('{{ pkiCert "pki/issue/x" }}', 1, "pkiCert needs the certificate's parameters", "pkiCert"),
    (
        '{{ base64Decode "a" "b" }}',
        1,
        "wrong number of args for base64Decode: want 1 got 2",
        "base64Decode",
    ),
    ('{{ "a" | toUpper "b" }}', 1, "wrong number of args for toUpper: want 1 got 2", "toUpper"),
    ("{{ toUpper 3 }}", 1, "expected string; found 3", "toUpper"),
    ('{{ indent "2" "x" }}', 1, 'expected integer; found "2"', "indent"),
    ("{{ toUpper nil }}", 1, "cannot assign nil to string", "toUpper"),
    ("x\n{{ if .x }}", 2, "unexpected EOF: the {{if}} of line 2 has no {{end}}", None),
    ("{{ end }}", 1, "unexpected {{end}}", None),
    ("{{ else }}", 1, "unexpected {{else}}", None),
    ("{{ if 1 }}{{ else }}{{ else }}{{ end }}", 1, "expected end; found {{else}}", None),
    ("{{ .x", 1, "unclosed action", None),
    ('{{ "abc }}', 1, "unterminated quoted string", None),
    ("{{ $undefined }}", 1, 'undefined variable "$undefined"', None),
    ("{{ $x = 3 }}", 1, 'undefined variable "$x"', None),
    ("{{ break }}", 1, "{{break}} outside {{range}}", None),
    ("{{ if }}{{ end }}", 1, "missing value for if", None),
    ("{{ 3 | 4 }}", 1, "non executable command in pipeline stage 2", None),
    ("{{ .Data.my-key }}", 1, "bad character U+002D '-'", None),
    ("{{/* x */ }}", 1, "comment ends before closing delimiter", None),
    ("{{/* x", 1, "unclosed comment", None),
    ("{{ nil }}", 1, "nil is not a command", None),
    ("{{ (1 }}", 1, "unclosed left paren", None),
    ('{{ "\\q" }}', 1, "invalid syntax in a quoted string", None),
    ("{{ 99999999999999999999 }}", 1, 'integer overflow: "99999999999999999999"', None),
    ("{{ if 1 }}" * 60 + "{{ end }}" * 60, 1, "nested more than 50 levels deep", None),
    ("{{ " + "(" * 60 + "1" + ")" * 60 + " }}", 1, "nested more than 50 levels deep", None),
]


@pytest.mark.parametrize(("template", "line", "reason", "construct"), REFUSED)
def test_refused_when_parsed(template: str, line: int, reason: str, construct: str | None) -> None:
    with pytest.raises(TemplateSyntax) as error:
        parse(template)
    assert error.value.line == line
    assert error.value.reason.startswith(reason), error.value.reason
    assert str(error.value) == f"line {line}: {error.value.reason}"
    assert error.value.construct == construct
    assert isinstance(error.value, GoTemplateError)


# ---------------------------------------------------------------- properties

_TOKENS = [
    "{{", "}}", "{{- ", " -}}", " ", "\n", "if ", "else ", "end", "range ", "with ", "define ",
    ".", ".Data", ".data", ".x", "$x", "$", " := ", " = ", " | ", "(", ")", '"a"', '"%s"',
    '"%d"', "`b`", "1", "-1", "1.5", "'c'", "nil", "true", "secret ", '"secret/data/web"',
    "printf ", "index ", "len ", "eq ", "and ", "or ", "not ", "toJSON ", "toYAML ", "split ",
    '","', "join ", "break", "continue", "/*", "*/", ",", "text", "pkiCert ", '"common_name=x"',
]  # fmt: skip


class AnyVault:
    """Answers every path (the property tests' fetcher)."""

    def __call__(self, path: str, params: Mapping[str, str]) -> Mapping[str, Any]:
        return {"data": {"data": {"x": "1", "n": 2}, "a": [1, None, {"b": True}]}}


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_any_text_parses_or_is_refused(text: str) -> None:
    with contextlib.suppress(TemplateSyntax):
        parse(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join))
def test_any_template_parses_and_renders_or_is_refused(text: str) -> None:
    try:
        template = parse(text)
    except TemplateSyntax:
        return
    error: GoTemplateError | None = None
    try:
        template.render(AnyVault(), {}, max_steps=10_000)
    except GoTemplateError as exc:
        error = exc
    assert error is None or "internal error" not in str(error)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200).filter(lambda text: "{{" not in text))
def test_text_without_actions_renders_to_itself(text: str) -> None:
    assert parse(text).render(FakeVault()) == text


# ---------------------------------------------------------------- no I/O

_ALLOWED_IMPORTS = {
    "__future__",
    "base64",
    "binascii",
    "collections.abc",
    "contextlib",
    "dataclasses",
    "decimal",
    "functools",
    "hashlib",
    "json",
    "math",
    "re",
    "typing",
}


def test_the_engine_imports_nothing_that_does_io() -> None:
    package = Path(gotemplate.__file__).parent
    for path in sorted(package.glob("gotemplate*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                allowed = name in _ALLOWED_IMPORTS or name.startswith("pillion.render.")
                assert allowed, f"{path.name} imports {name}"
                assert name != "pillion.render.templates", path.name  # no Jinja2 here
