"""The evaluator of ``pillion.gotemplate``: Go's ``text/template/exec.go``
over the tree of ``gotemplate_parse`` and the values of ``gotemplate_values``.

Dot and ``$`` start as Go's nil data, as consul-template runs its templates. Map
keys that do not exist are consul-template's ``missingkey=zero`` (a nil
interface, printed ``<no value>``) or, with ``error_on_missing_key``,
``missingkey=error``. Output, steps and data depth are bounded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pillion.gotemplate.fmt import print_value
from pillion.gotemplate.funcs import ANY, FUNCTIONS, INT, STR, STRS, VALUE, Context
from pillion.gotemplate.lex import GoTemplateError
from pillion.gotemplate.parse import (
    Action,
    Chain,
    Command,
    Control,
    Dot,
    Field,
    Identifier,
    Jump,
    Literal,
    Nil,
    Node,
    Pipeline,
    Text,
    Variable,
)
from pillion.gotemplate.values import (
    MISSING,
    FetchFailed,
    FuncError,
    GoNil,
    GoStruct,
    StrList,
    go_type,
    is_true,
    sorted_keys,
)

__all__ = ["TemplateExecError", "execute"]


class TemplateExecError(GoTemplateError):
    """The template failed while rendering, at ``line``; the message names the
    cause, never a value."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL: Any = object()  # no value piped in from a previous command


class _State:
    def __init__(
        self, ctx: Context, error_on_missing_key: bool, max_output: int, max_steps: int
    ) -> None:
        self.ctx = ctx
        self.error_on_missing_key = error_on_missing_key
        self.max_output = max_output
        self.max_steps = max_steps
        self.vars: list[list[Any]] = [["$", MISSING]]
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.line = 1

    def error(self, reason: str) -> TemplateExecError:
        return TemplateExecError(self.line, reason)

    def step(self, node: Node) -> None:
        self.line = node.line
        self.steps += 1
        if self.steps > self.max_steps:
            raise self.error(f"the template took more than {self.max_steps} steps")

    def write(self, text: str) -> None:
        self.size += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        if self.size > self.max_output:
            raise self.error(f"the output is longer than {self.max_output} bytes")
        self.out.append(text)

    # ------------------------------------------------------------ walking

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.step(node)
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.line = node.line
                    self.write(print_value(value))
            elif isinstance(node, Control):
                if node.kind == "range":
                    self.range(dot, node)
                else:
                    self.if_or_with(dot, node)
            elif isinstance(node, Jump):
                raise _Break() if node.kind == "break" else _Continue()
            else:  # pragma: no cover - the parser makes no other node
                raise self.error(f"unknown node {type(node).__name__}")

    def if_or_with(self, dot: Any, node: Control) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if is_true(value):
            self.walk(value if node.kind == "with" else dot, node.body)
        elif node.otherwise is not None:
            self.walk(dot, node.otherwise)
        del self.vars[mark:]

    def range(self, dot: Any, node: Control) -> None:
        outer = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        mark = len(self.vars)
        decl, assign = node.pipe.decl, node.pipe.is_assign
        ran = False
        try:
            for index, elem in self.iterate(value, len(decl)):
                ran = True
                if decl:
                    if assign:
                        self.set_var(decl[0], index if len(decl) > 1 else elem)
                        if len(decl) > 1:
                            self.set_var(decl[1], elem)
                    else:
                        self.vars[-1][1] = elem
                        if len(decl) > 1:
                            self.vars[-2][1] = index
                with contextlib.suppress(_Continue):
                    self.walk(elem, node.body)
                del self.vars[mark:]
                self.step(node)
        except _Break:
            pass
        del self.vars[mark:]
        if not ran and node.otherwise is not None:
            self.walk(dot, node.otherwise)
        del self.vars[outer:]

    def iterate(self, value: Any, variables: int) -> Iterator[tuple[Any, Any]]:
        if isinstance(value, list):
            return iter(list(enumerate(value)))
        if isinstance(value, dict):
            return iter([(key, value[key]) for key in sorted_keys(value)])
        if isinstance(value, int) and not isinstance(value, bool):
            if variables > 1:
                raise self.error("can't use an int to iterate over more than one variable")
            return iter([(MISSING, i) for i in range(max(0, value))])
        if value is MISSING or value is None:
            return iter(())
        raise self.error(f"range can't iterate over a value of type {go_type(value)}")

    # ------------------------------------------------------------ variables

    def var(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.error(f"undefined variable: {name}")

    # ------------------------------------------------------------ evaluation

    def pipeline(self, dot: Any, pipe: Pipeline) -> Any:
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:  # a nil interface{} result: Go digs it out as "no value"
                value = MISSING
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        head = cmd.args[0]
        self.step(head)
        if isinstance(head, Identifier):
            return self.call(dot, head, cmd.args[1:], final)
        if final is not _NO_FINAL or len(cmd.args) > 1:  # refused by the parser
            raise self.error("can't give argument to non-function")
        return self.operand(dot, head)

    def operand(self, dot: Any, node: Node) -> Any:
        """A value: a field chain, variable, parenthesized pipeline or constant."""
        if isinstance(node, Field):
            return self.fields(dot, node.idents)
        if isinstance(node, Variable):
            return self.fields(self.var(node.name), node.idents)
        if isinstance(node, Chain):
            return self.fields(self.operand(dot, node.node), node.idents)
        if isinstance(node, Pipeline):
            return self.pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.call(dot, node, [], _NO_FINAL)
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Nil):
            raise self.error("nil is not a command")
        raise self.error(f"can't evaluate {type(node).__name__}")  # pragma: no cover

    def fields(self, receiver: Any, idents: tuple[str, ...]) -> Any:
        for name in idents:
            receiver = self.field(receiver, name)
        return receiver

    def field(self, receiver: Any, name: str) -> Any:
        if receiver is MISSING:
            if self.error_on_missing_key:
                raise self.error(f'nil data; no entry for key "{name}"')
            return MISSING
        if receiver is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if name in receiver:
                return receiver[name]
            if self.error_on_missing_key:
                raise self.error(f'map has no entry for key "{name}"')
            return None  # the zero value of interface{}
        if isinstance(receiver, GoStruct):
            if name in receiver.fields:
                return receiver.fields[name]
            if name in receiver.methods:
                return receiver.methods[name]
        if isinstance(receiver, GoNil) and name in receiver.fields:
            raise self.error(f"nil pointer evaluating {go_type(receiver)}.{name}")
        raise self.error(f"can't evaluate field {name} in type {go_type(receiver)}")

    def call(self, dot: Any, ident: Identifier, args: list[Node], final: Any) -> Any:
        name = ident.name
        func = FUNCTIONS[name]
        if name in ("and", "or"):
            value: Any = MISSING
            for node in args:
                value = self.arg(dot, VALUE, node)
                if is_true(value) == (name == "or"):
                    return value
            return final if final is not _NO_FINAL else value
        values = []
        params = func.params
        for i, node in enumerate(args):
            values.append(self.arg(dot, params[i] if i < len(params) else func.variadic, node))
        if final is not _NO_FINAL:
            kind = params[len(args)] if len(args) < len(params) else func.variadic
            values.append(self.validate(final, kind))
        count = len(values)
        if count < len(params) or (func.variadic is None and count > len(params)):
            self.line = ident.line
            raise self.error(f"wrong number of args for {name}: want {len(params)} got {count}")
        self.line = ident.line
        try:
            if func.context:
                return func.impl(self.ctx, *values)
            return func.impl(*values)
        except FuncError as exc:
            raise self.error(f"error calling {name}: {exc}") from None
        except FetchFailed:
            raise
        except (ArithmeticError, LookupError, TypeError, ValueError, UnicodeError) as exc:
            # a defect of a function: reported as the template's error, not a crash
            raise self.error(
                f"error calling {name}: internal error ({type(exc).__name__})"
            ) from exc

    def arg(self, dot: Any, kind: str | None, node: Node) -> Any:
        self.line = node.line
        if isinstance(node, Literal):
            if kind == STR:
                if isinstance(node.value, str):
                    return node.value
                raise self.error(f"expected string; found {node.text}")
            if kind == INT:
                if node.integer is not None and not isinstance(node.value, bool):
                    return node.integer
                raise self.error(f"expected integer; found {node.text}")
            if kind == STRS:
                raise self.error(f"can't handle {node.text} for arg of type []string")
            return node.value
        if isinstance(node, Nil):
            if kind in (STR, INT):
                raise self.error(f"cannot assign nil to {kind}")
            return StrList() if kind == STRS else MISSING if kind == VALUE else None
        return self.validate(self.operand(dot, node), kind)

    def validate(self, value: Any, kind: str | None) -> Any:
        """Go's ``validateType``: the value as the parameter's type takes it."""
        if kind in (ANY, None):
            return None if value is MISSING else value
        if kind == VALUE:
            return value
        if value is MISSING:
            if kind == STRS:
                return StrList()
            raise self.error(f"invalid value; expected {kind}")
        if kind == STR and type(value) is str:
            return value
        if kind == INT and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == STRS and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise self.error(f"wrong type for value; expected {kind}; got {go_type(value)}")


def execute(
    nodes: list[Node],
    ctx: Context,
    *,
    error_on_missing_key: bool,
    max_output: int,
    max_steps: int,
) -> str:
    """The output of ``nodes``; raises :class:`TemplateExecError` (what the fetcher
    raises goes through unchanged)."""
    state = _State(ctx, error_on_missing_key, max_output, max_steps)
    try:
        state.walk(MISSING, nodes)
    except (_Break, _Continue):  # pragma: no cover - the parser keeps them in ranges
        raise state.error("break or continue outside range") from None
    except RecursionError:
        raise state.error("the template nests too deeply") from None
    except FetchFailed as failed:
        raise failed.error from None
    return "".join(state.out)
