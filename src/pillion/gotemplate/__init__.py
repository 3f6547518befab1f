"""Vault Agent templates: the subset of Go's text/template (consul-template's
dialect) that HashiCorp's docs and tutorials use, parsed, checked and rendered
without I/O.

``parse(text)`` returns a :class:`GoTemplate` or raises :class:`TemplateSyntax`
(line and construct): a template that does not parse, or that uses what is not
supported, is refused before it runs. ``GoTemplate.secret_paths()`` lists the
``secret``/``pkiCert`` calls with literal arguments, so a caller can fetch and
watch them up front. ``GoTemplate.render(fetch, env)`` runs it: ``secret`` and
``pkiCert`` call ``fetch(path, params)``, which returns Vault's JSON response;
``env`` reads the given mapping only. Errors are :class:`TemplateExecError`
(both :class:`GoTemplateError`, naming the line, never a value);
what ``fetch`` raises goes through unchanged.

Supported: text, actions, ``{{-``/``-}}`` trimming, comments; ``if``/``else
if``/``else``, ``with``/``else with``/``else``, ``range`` (lists, maps in key
order, integers; ``$k, $v :=``; ``else``; ``break``, ``continue``); variables
(``$x :=``, ``$x =``, ``$``); fields (``.Data.data.key``), ``index``,
pipelines, parentheses; Go's builtins ``and or not len index print printf println
eq ne lt le gt ge``; consul-template's ``secret pkiCert env base64Decode
base64Encode base64URLDecode base64URLEncode toJSON toJSONPretty
toUnescapedJSON toUnescapedJSONPretty toYAML parseJSON trimSpace trim trimPrefix
trimSuffix toLower toUpper split join replaceAll indent contains in sha256Hex``.

Refused when parsed: ``define``, ``template``, ``block``; every other function
(``file``, ``key``, ``service``, ``plugin``, ``executeTemplate``, ``writeToFile``,
``timestamp``, Sprig's, ...); method calls and arguments given to a value;
complex numbers; a field a secret does not have (``.data`` for ``.Data``).

Missing keys: consul-template runs templates with ``missingkey=zero`` unless its
``error_on_missing_key`` (vault-k8s: ``vault.hashicorp.com/error-on-missing-key-
<name>``) is set, then ``missingkey=error``. So by default ``.Data.data.nokey``
prints ``<no value>`` (and is false in ``if``), as Vault Agent does; with
``error_on_missing_key=True`` it is an error. ``index`` never errors on a missing
key, in Go either.

What ``secret`` gives is consul-template's ``Secret``: ``.Data``, ``.LeaseDuration``
(an int), ``.LeaseID``, ``.Renewable``, ``.RequestID``, ``.Warnings``, ``.Auth``
(``.Auth.ClientToken``, ...), ``.WrapInfo``. Numbers in ``.Data`` are Go's
``json.Number``, as Vault's client decodes them: printed as written, equal to a
string in ``eq``, true in ``if`` even when 0. ``pkiCert`` gives ``.Cert``,
``.Key``, ``.CA`` (PEM ending with a newline, as consul-template re-encodes them),
``.CAChain``, and ``.Data``: Vault's ``certificate``, ``private_key``,
``issuing_ca``, ... as Vault wrote them (and ``Cert``, ``Key``, ``CA``). A path
loses its surrounding spaces and slashes; ``"key=value"`` arguments are the
params (a write); ``pkiCert`` must have some. Each (path, params) is fetched
once a render.

Bounded: the output (``max_output`` bytes), the steps (``max_steps``: nodes,
commands, range iterations), the nesting of the template (50) and of data (100),
every string a function builds (``max_output``).
"""

from __future__ import annotations

from collections.abc import Mapping

from pillion.gotemplate.exec import TemplateExecError, execute
from pillion.gotemplate.funcs import (
    FUNCTIONS,
    INT,
    KNOWN_UNSUPPORTED,
    STR,
    Context,
    Fetcher,
    go_bytes,
)
from pillion.gotemplate.lex import GoTemplateError, TemplateSyntax
from pillion.gotemplate.parse import (
    Action,
    Chain,
    Command,
    Control,
    Field,
    Identifier,
    Literal,
    Nil,
    Node,
    Pipeline,
    Variable,
    describe,
    parse_tree,
)
from pillion.gotemplate.values import FuncError
from pillion.gotemplate.vault import PKI_FIELDS, SECRET_FIELDS, secret_request

__all__ = [
    "MAX_OUTPUT",
    "MAX_STEPS",
    "SUPPORTED_FUNCTIONS",
    "Fetcher",
    "GoTemplate",
    "GoTemplateError",
    "TemplateExecError",
    "TemplateSyntax",
    "parse",
]

MAX_OUTPUT = 1 << 20  # bytes a render may write
MAX_STEPS = 1_000_000  # nodes, commands and range iterations a render may run
SUPPORTED_FUNCTIONS = tuple(sorted(FUNCTIONS, key=str.lower))

_SUPPORTED = ", ".join(SUPPORTED_FUNCTIONS)


def _check_function(name: str, line: int) -> None:
    if name in FUNCTIONS:
        return
    if name in KNOWN_UNSUPPORTED or name.startswith("sprig_"):
        reason = f'function "{name}" is not supported (supported: {_SUPPORTED})'
    else:
        reason = f'function "{name}" is not defined (supported: {_SUPPORTED})'
    raise TemplateSyntax(line, reason, name)


class GoTemplate:
    """A parsed Vault Agent template; render it as often as needed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._nodes = parse_tree(text, _check_function)
        checker = _Checker()
        checker.nodes(self._nodes, None, {})
        self._paths = checker.paths
        self.dynamic_paths = checker.dynamic is not None
        """Whether some ``secret``/``pkiCert`` call has an argument that is not a
        literal (its path is known only when the template renders)."""
        self.dynamic_call = checker.dynamic
        """The first such call, as (line, function name); ``None`` when there is none."""

    def secret_paths(self) -> list[tuple[str, dict[str, str]]]:
        """The (path, params) of the ``secret`` and ``pkiCert`` calls with literal
        arguments, in order, each once: what ``render`` will ask the fetcher for
        (params empty: a read; given: a write, e.g. a PKI issue)."""
        return [(path, dict(params)) for path, params in self._paths]

    def render(
        self,
        fetch: Fetcher,
        env: Mapping[str, str] | None = None,
        *,
        error_on_missing_key: bool = False,
        max_output: int = MAX_OUTPUT,
        max_steps: int = MAX_STEPS,
    ) -> str:
        """The output. A Go string holds bytes: bytes that are not UTF-8 (e.g.
        from ``base64Decode``) are surrogate escapes here; :meth:`render_bytes`
        gives the bytes."""
        ctx = Context(fetch, env if env is not None else {}, max_output)
        return execute(
            self._nodes,
            ctx,
            error_on_missing_key=error_on_missing_key,
            max_output=max_output,
            max_steps=max_steps,
        )

    def render_bytes(
        self,
        fetch: Fetcher,
        env: Mapping[str, str] | None = None,
        *,
        error_on_missing_key: bool = False,
        max_output: int = MAX_OUTPUT,
        max_steps: int = MAX_STEPS,
    ) -> bytes:
        """The output's bytes, as Vault Agent writes them."""
        text = self.render(
            fetch,
            env,
            error_on_missing_key=error_on_missing_key,
            max_output=max_output,
            max_steps=max_steps,
        )
        return go_bytes(text)


def parse(text: str) -> GoTemplate:
    """``text`` parsed and checked; raises :class:`TemplateSyntax`."""
    return GoTemplate(text)


class _Checker:
    """What can be refused before a render: the number and literal types of
    functions' arguments, ``secret``/``pkiCert`` arguments, and fields a secret
    does not have (dot's kind is followed through ``with``); also collects the
    literal secret paths."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self.dynamic: tuple[int, str] | None = None  # the first call with a computed path

    def nodes(self, nodes: list[Node], dot: str | None, kinds: dict[str, str | None]) -> None:
        for node in nodes:
            if isinstance(node, Action):
                self.pipeline(node.pipe, dot, kinds)
            elif isinstance(node, Control):
                inner = dict(kinds)
                kind = self.pipeline(node.pipe, dot, inner)
                if node.kind == "range":
                    for name in node.pipe.decl:
                        inner[name] = None
                body_dot = {"if": dot, "with": kind, "range": None}[node.kind]
                self.nodes(node.body, body_dot, dict(inner))
                if node.otherwise is not None:
                    self.nodes(node.otherwise, dot, dict(inner))

    def pipeline(self, pipe: Pipeline, dot: str | None, kinds: dict[str, str | None]) -> str | None:
        """Checks the pipeline; returns what kind of value it gives ("secret",
        "pki" or None: unknown), and records its variables' kinds."""
        kind: str | None = None
        for stage, cmd in enumerate(pipe.cmds):
            kind = self.command(cmd, stage > 0, dot, kinds)
        for name in pipe.decl:
            kinds[name] = kind
        return kind

    def command(
        self, cmd: Command, piped: bool, dot: str | None, kinds: dict[str, str | None]
    ) -> str | None:
        head = cmd.args[0]
        for node in cmd.args:
            self.operand(
                node, node is head and piped, cmd.args[1:] if node is head else [], dot, kinds
            )
        if isinstance(head, Identifier) and head.name in ("secret", "pkiCert") and not piped:
            return "secret" if head.name == "secret" else "pki"
        if isinstance(head, Variable) and not head.idents and len(cmd.args) == 1:
            return kinds.get(head.name)
        if isinstance(head, Pipeline) and len(cmd.args) == 1:
            return self.kind_of(head, kinds)
        return None

    def kind_of(self, pipe: Pipeline, kinds: dict[str, str | None]) -> str | None:
        if len(pipe.cmds) != 1:
            return None
        head = pipe.cmds[0].args[0]
        if isinstance(head, Identifier) and head.name in ("secret", "pkiCert"):
            return "secret" if head.name == "secret" else "pki"
        if isinstance(head, Variable) and not head.idents:
            return kinds.get(head.name)
        return None

    def operand(
        self,
        node: Node,
        piped: bool,
        args: list[Node],
        dot: str | None,
        kinds: dict[str, str | None],
    ) -> None:
        if isinstance(node, Field):
            self.first_field(dot, node.idents, node)
        elif isinstance(node, Variable) and node.idents:
            self.first_field(kinds.get(node.name), node.idents, node)
        elif isinstance(node, Chain):
            if isinstance(node.node, Pipeline):
                self.pipeline(node.node, dot, dict(kinds))
                self.first_field(self.kind_of(node.node, kinds), node.idents, node)
            else:
                self.operand(node.node, False, [], dot, kinds)
        elif isinstance(node, Pipeline):
            self.pipeline(node, dot, dict(kinds))
        elif isinstance(node, Identifier):
            self.call(node, args, piped)

    def first_field(self, kind: str | None, idents: tuple[str, ...], node: Node) -> None:
        if kind is None:
            return
        fields = SECRET_FIELDS if kind == "secret" else PKI_FIELDS
        if idents[0] not in fields:
            what = "a secret" if kind == "secret" else "a pkiCert certificate"
            raise TemplateSyntax(
                node.line,
                f'{what} has no field "{idents[0]}" (it has {", ".join(sorted(fields))})',
                describe(node),
            )

    def call(self, ident: Identifier, args: list[Node], piped: bool) -> None:
        name, line = ident.name, ident.line
        func = FUNCTIONS[name]
        count = len(args) + piped
        fixed = len(func.params)
        if func.variadic is not None and count < fixed:
            raise TemplateSyntax(
                line, f"wrong number of args for {name}: want at least {fixed} got {count}", name
            )
        if func.variadic is None and count != fixed:
            raise TemplateSyntax(
                line, f"wrong number of args for {name}: want {fixed} got {count}", name
            )
        for i, node in enumerate(args):
            kind = func.params[i] if i < fixed else func.variadic
            if kind in (STR, INT) and isinstance(node, Nil):
                raise TemplateSyntax(node.line, f"cannot assign nil to {kind}", name)
            if not isinstance(node, Literal):
                continue
            if kind == STR and not isinstance(node.value, str):
                raise TemplateSyntax(node.line, f"expected string; found {node.text}", name)
            if kind == INT and (node.integer is None or isinstance(node.value, bool)):
                raise TemplateSyntax(node.line, f"expected integer; found {node.text}", name)
        if name in ("secret", "pkiCert"):
            self.secret_call(ident, args, piped)

    def secret_call(self, ident: Identifier, args: list[Node], piped: bool) -> None:
        name = ident.name
        literal = [n.value for n in args if isinstance(n, Literal) and isinstance(n.value, str)]
        if not args and not piped:
            raise TemplateSyntax(
                ident.line, f'{name} needs a path, e.g. {name} "secret/data/app"', name
            )
        if piped or len(literal) != len(args):
            if self.dynamic is None:
                self.dynamic = (ident.line, name)
            return
        try:
            path, params = secret_request(literal)
        except FuncError as exc:
            raise TemplateSyntax(ident.line, f"{name}: {exc}", name) from None
        if name == "pkiCert" and not params:
            raise TemplateSyntax(
                ident.line,
                'pkiCert needs the certificate\'s parameters, e.g. "common_name=example.com"',
                name,
            )
        entry = (path, tuple(params.items()))
        if entry not in self.paths:
            self.paths.append(entry)
