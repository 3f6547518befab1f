"""The parser of ``pillion.gotemplate``: Go's text/template grammar
(``text/template/parse``), producing the tree the evaluator walks.

What is outside the supported subset is refused here, when the template is parsed,
never when it renders: ``define``/``template``/``block``, functions other than the
supported ones (``check_function``), method calls, complex numbers, arguments given
to values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from pillion.gotemplate.lex import (
    ASSIGN,
    BOOL,
    CHAR,
    CHARCONST,
    COMPLEX,
    DECLARE,
    DOT,
    EOF,
    ERROR,
    FIELD,
    IDENT,
    LEFT,
    LPAREN,
    NIL,
    NUMBER,
    PIPE,
    RAW,
    RIGHT,
    RPAREN,
    SPACE,
    STRING,
    TEXT,
    VAR,
    TemplateSyntax,
    Token,
    escape_value,
    go_quote,
    lex,
    parse_float,
    parse_int,
    unquote,
)

__all__ = [
    "MAX_DEPTH",
    "Action",
    "Chain",
    "Command",
    "Control",
    "Dot",
    "Field",
    "Identifier",
    "Jump",
    "Literal",
    "Nil",
    "Node",
    "Pipeline",
    "Text",
    "Variable",
    "describe",
    "parse_tree",
]

# Nesting of control structures and parentheses a template may use.
MAX_DEPTH = 50


# ---------------------------------------------------------------- the tree


@dataclasses.dataclass(slots=True, eq=False)
class Node:
    line: int


@dataclasses.dataclass(slots=True, eq=False)
class Text(Node):
    text: str


@dataclasses.dataclass(slots=True, eq=False)
class Field(Node):
    """``.A.B``: fields of dot."""

    idents: tuple[str, ...]


@dataclasses.dataclass(slots=True, eq=False)
class Variable(Node):
    """``$x.A.B``: the variable, then fields."""

    name: str
    idents: tuple[str, ...]


@dataclasses.dataclass(slots=True, eq=False)
class Chain(Node):
    """``(pipeline).A.B``."""

    node: Node
    idents: tuple[str, ...]


@dataclasses.dataclass(slots=True, eq=False)
class Identifier(Node):
    name: str


@dataclasses.dataclass(slots=True, eq=False)
class Dot(Node):
    pass


@dataclasses.dataclass(slots=True, eq=False)
class Nil(Node):
    pass


@dataclasses.dataclass(slots=True, eq=False)
class Literal(Node):
    """A bool, string or number constant; ``text`` as written."""

    value: bool | str | int | float
    text: str
    integer: int | None = None  # a number's value where an integer is needed


@dataclasses.dataclass(slots=True, eq=False)
class Command(Node):
    args: list[Node]


@dataclasses.dataclass(slots=True, eq=False)
class Pipeline(Node):
    decl: list[str]
    is_assign: bool
    cmds: list[Command]


@dataclasses.dataclass(slots=True, eq=False)
class Action(Node):
    pipe: Pipeline


@dataclasses.dataclass(slots=True, eq=False)
class Control(Node):
    """``if``, ``with`` or ``range``."""

    kind: str
    pipe: Pipeline
    body: list[Node]
    otherwise: list[Node] | None


@dataclasses.dataclass(slots=True, eq=False)
class Jump(Node):
    """``break`` or ``continue``."""

    kind: str


@dataclasses.dataclass(slots=True, eq=False)
class _End(Node):
    pass


@dataclasses.dataclass(slots=True, eq=False)
class _Else(Node):
    pass


def describe(node: Node) -> str:
    """The node as the template writes it (for error messages)."""
    if isinstance(node, Field):
        return "." + ".".join(node.idents)
    if isinstance(node, Variable):
        return ".".join((node.name, *node.idents))
    if isinstance(node, Chain):
        return "(" + describe(node.node) + ")." + ".".join(node.idents)
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Dot):
        return "."
    if isinstance(node, Nil):
        return "nil"
    if isinstance(node, Literal):
        return node.text
    if isinstance(node, Pipeline):
        return " | ".join(" ".join(describe(a) for a in c.args) for c in node.cmds)
    return type(node).__name__.lower()


# ---------------------------------------------------------------- the parser


_OPERAND_START = frozenset(
    (BOOL, CHARCONST, COMPLEX, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VAR, LPAREN)
)


class _Parser:
    def __init__(self, tokens: list[Token], check_function: Callable[[str, int], None]) -> None:
        self.tokens = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.depth = 0
        self.check_function = check_function

    # tokens
    def peek(self) -> Token:
        token = self.tokens[self.i]
        if token.typ == ERROR:
            raise TemplateSyntax(token.line, token.val)
        return token

    def next(self) -> Token:
        token = self.peek()
        if token.typ != EOF:
            self.i += 1
        return token

    def backup(self, count: int = 1) -> None:
        self.i -= count

    def next_non_space(self) -> Token:
        token = self.next()
        while token.typ == SPACE:
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        token = self.next_non_space()
        if token.typ != EOF:
            self.backup()
        return token

    def expect(self, typ: str, context: str) -> Token:
        token = self.next_non_space()
        if token.typ != typ:
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Token, context: str) -> None:
        if token.typ == ERROR:
            raise TemplateSyntax(token.line, token.val)
        raise TemplateSyntax(token.line, f"unexpected {token} in {context}")

    def nest(self, line: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TemplateSyntax(line, f"nested more than {MAX_DEPTH} levels deep")

    # structure
    def parse(self) -> list[Node]:
        root: list[Node] = []
        while self.peek().typ != EOF:
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                word = "end" if isinstance(node, _End) else "else"
                raise TemplateSyntax(node.line, f"unexpected {{{{{word}}}}}")
            root.append(node)
        return root

    def item_list(self, context: str, line: int) -> tuple[list[Node], Node]:
        nodes: list[Node] = []
        while self.peek_non_space().typ != EOF:
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return nodes, node
            nodes.append(node)
        raise TemplateSyntax(
            self.peek().line,
            f"unexpected EOF: the {{{{{context}}}}} of line {line} has no {{{{end}}}}",
        )

    def text_or_action(self) -> Node:
        token = self.next_non_space()
        if token.typ == TEXT:
            return Text(token.line, token.val)
        if token.typ == LEFT:
            return self.action()
        self.unexpected(token, "input")
        raise AssertionError("unreachable")

    def action(self) -> Node:
        token = self.next_non_space()
        typ = token.typ
        if typ in ("define", "template", "block"):
            raise TemplateSyntax(
                token.line,
                f"{{{{{typ}}}}} is not supported (a template cannot define or include "
                "other templates)",
                typ,
            )
        if typ in ("break", "continue"):
            closing = self.next_non_space()
            if closing.typ != RIGHT:
                self.unexpected(closing, f"{{{{{typ}}}}}")
            if self.range_depth == 0:
                raise TemplateSyntax(token.line, f"{{{{{typ}}}}} outside {{{{range}}}}")
            return Jump(token.line, typ)
        if typ == "else":
            peek = self.peek_non_space()
            if peek.typ in ("if", "with"):
                return _Else(peek.line)
            return _Else(self.expect(RIGHT, "else").line)
        if typ == "end":
            return _End(self.expect(RIGHT, "end").line)
        if typ in ("if", "with", "range"):
            return self.control(typ, token.line)
        self.backup()
        token = self.peek()
        return Action(token.line, self.pipeline("command", RIGHT))

    def control(self, kind: str, line: int) -> Control:
        self.nest(line)
        mark = len(self.vars)
        pipe = self.pipeline(kind, RIGHT)
        if kind == "range":
            self.range_depth += 1
        body, next_node = self.item_list(kind, line)
        if kind == "range":
            self.range_depth -= 1
        otherwise: list[Node] | None = None
        if isinstance(next_node, _Else):
            # {{else if x}} / {{else with x}} is {{else}}{{if x}}...{{end}}{{end}}
            if kind in ("if", "with") and self.peek().typ == kind:
                token = self.next()
                otherwise = [self.control(kind, token.line)]
            else:
                otherwise, next_node = self.item_list(kind, line)
                if not isinstance(next_node, _End):
                    raise TemplateSyntax(next_node.line, "expected end; found {{else}}")
        del self.vars[mark:]
        self.depth -= 1
        return Control(line, kind, pipe, body, otherwise)

    def pipeline(self, context: str, end: str) -> Pipeline:
        token = self.peek_non_space()
        pipe = Pipeline(token.line, [], False, [])
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != VAR:
                break
            at_variable = self.i
            self.next()
            following = self.peek_non_space()
            if following.typ in (ASSIGN, DECLARE):
                pipe.is_assign = following.typ == ASSIGN
                self.next_non_space()
                self.declare(pipe, v)
            elif following.typ == CHAR and following.val == ",":
                self.next_non_space()
                self.declare(pipe, v)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (VAR, RIGHT, RPAREN):
                        continue
                    raise TemplateSyntax(v.line, "range can only initialize variables")
                raise TemplateSyntax(v.line, f"too many declarations in {context}")
            else:
                self.i = at_variable  # not a declaration: "$x" is the first operand
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                if not pipe.cmds:
                    raise TemplateSyntax(token.line, f"missing value for {context}")
                for stage, cmd in enumerate(pipe.cmds[1:], start=2):
                    if isinstance(cmd.args[0], Literal | Dot | Nil):
                        raise TemplateSyntax(
                            cmd.line, f"non executable command in pipeline stage {stage}"
                        )
                for stage, cmd in enumerate(pipe.cmds):
                    self.check_command(cmd, stage > 0)
                return pipe
            if token.typ in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def declare(self, pipe: Pipeline, token: Token) -> None:
        if pipe.is_assign and token.val not in self.vars:
            raise TemplateSyntax(token.line, f"undefined variable {go_quote(token.val)}")
        pipe.decl.append(token.val)
        self.vars.append(token.val)

    def command(self) -> Command:
        cmd = Command(self.peek_non_space().line, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == SPACE:
                continue
            if token.typ in (RIGHT, RPAREN):
                self.backup()
            elif token.typ != PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            raise TemplateSyntax(cmd.line, "empty command")
        return cmd

    def check_command(self, cmd: Command, piped: bool) -> None:
        """What Go refuses when it runs, refused now: arguments given to something
        that is not a function (a method call, or a value)."""
        head = cmd.args[0]
        if isinstance(head, Identifier) or not (len(cmd.args) > 1 or piped):
            if isinstance(head, Nil):
                raise TemplateSyntax(head.line, "nil is not a command")
            return
        what = f"({describe(head)})" if isinstance(head, Pipeline) else describe(head)
        if isinstance(head, Field | Chain) or (isinstance(head, Variable) and head.idents):
            raise TemplateSyntax(
                head.line,
                f"method calls are not supported: {what} is given arguments",
                what,
            )
        raise TemplateSyntax(head.line, f"can't give argument to non-function {what}", what)

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == FIELD:
            fields: list[str] = []
            while self.peek().typ == FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, Field):
                return Field(node.line, node.idents + tuple(fields))
            if isinstance(node, Variable):
                return Variable(node.line, node.name, node.idents + tuple(fields))
            if isinstance(node, Literal | Nil | Dot):
                raise TemplateSyntax(
                    node.line, f"unexpected . after term {go_quote(describe(node))}"
                )
            return Chain(node.line, node, tuple(fields))
        return node

    def term(self) -> Node | None:
        token = self.next_non_space()
        typ, line = token.typ, token.line
        if typ == IDENT:
            self.check_function(token.val, line)
            return Identifier(line, token.val)
        if typ == DOT:
            return Dot(line)
        if typ == NIL:
            return Nil(line)
        if typ == VAR:
            if token.val not in self.vars:
                raise TemplateSyntax(line, f"undefined variable {go_quote(token.val)}")
            return Variable(line, token.val, ())
        if typ == FIELD:
            return Field(line, (token.val[1:],))
        if typ == BOOL:
            return Literal(line, token.val == "true", token.val)
        if typ == COMPLEX or (typ == NUMBER and token.val.endswith("i")):
            raise TemplateSyntax(line, f"complex number {token.val} is not supported", token.val)
        if typ in (NUMBER, CHARCONST):
            return number(token)
        if typ == LPAREN:
            self.nest(line)
            pipe = self.pipeline("parenthesized pipeline", RPAREN)
            self.depth -= 1
            return pipe
        if typ in (STRING, RAW):
            return Literal(line, unquote(token), token.val)
        self.backup()
        return None


def parse_tree(text: str, check_function: Callable[[str, int], None]) -> list[Node]:
    """The template's nodes; ``check_function(name, line)`` raises for a function
    that may not be used."""
    return _Parser(lex(text), check_function).parse()


# ---------------------------------------------------------------- literals


def number(token: Token) -> Literal:
    """A number or character constant, typed as Go's text/template types it."""
    text, line = token.val, token.line
    if token.typ == CHARCONST:
        body = text[1:-1]
        if body.startswith("\\"):
            value, end, _ = escape_value(body, 1, "'", line)
        else:
            value, end = (ord(body[0]), 1) if body else (0, 0)
        if not body or end != len(body):
            raise TemplateSyntax(line, f"malformed character constant: {text}")
        return Literal(line, value, text, value)
    integer = parse_int(text)
    if integer is not None:
        # Go's idealConstant: a float if written like one (its isHexInt quirk included)
        hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and "p" not in text.lower()
        if not hex_int and any(c in text for c in ".eEpP"):
            return Literal(line, float(integer), text, integer)
        if not -(2**63) <= integer < 2**63:
            raise TemplateSyntax(line, f"{text} overflows int")
        return Literal(line, integer, text, integer)
    real = parse_float(text)
    if real is None:
        raise TemplateSyntax(line, f"illegal number syntax: {go_quote(text)}")
    if not any(c in text for c in ".eEpP"):
        raise TemplateSyntax(line, f"integer overflow: {go_quote(text)}")
    exact: int | None = None
    if math.isfinite(real) and real == int(real) and -(2**63) <= int(real) < 2**63:
        exact = int(real)
    return Literal(line, real, text, exact)
