"""The subset of expr-lang (github.com/expr-lang/expr) that Argo Rollouts' successCondition and
failureCondition use, with expr's semantics, so tests can judge a measurement exactly as Argo does.

Argo Rollouts (utils/evaluate/evaluate.go, EvalCondition) compiles the condition with
`expr.Compile(condition, expr.Env(env))` and runs it with env = {result, isNaN (math.IsNaN), isInf,
asInt, asFloat, isNil, default}; a compile error, a run-time error or a non-bool value makes the
measurement an *Error* (counted against consecutiveErrorLimit), not a Failure. Compiling type-checks the
whole expression against the types of the environment before anything runs, so `true || result[0]` is an
error even though `||` would short-circuit: this module checks types first, then evaluates.

Supported: number literals (int and float; `/` always gives a float, as in expr), `true`, `false`,
`result`, `result[i]` (a negative i counts from the end; out of range is a run-time error, so `result[0]`
on an empty vector is an Error), `len(x)`, `isNaN(x)`, `isInf(x)`, parentheses, unary `!` `not` `-` `+`,
and the binary operators `* / + - < <= > >= == != && and || or` with expr's precedences
(parser/operator/operator.go). Floats follow IEEE 754 as in Go: comparisons with NaN are false, x/0 is
±Inf or NaN. Anything else (strings, members, `%`, `**`, other functions) raises ExprError rather than guessing.

    evaluate("len(result) == 0 || result[0] < 0.1", [0.05])  # True
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

# expr's precedences (parser/operator/operator.go); these binary operators are all left-associative.
BINARY = {"||": 10, "or": 10, "&&": 15, "and": 15, "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20,
          "+": 30, "-": 30, "*": 60, "/": 60}
UNARY = {"!": 50, "not": 50, "-": 90, "+": 90}
FUNCTIONS = {"len", "isNaN", "isInf"}

TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/<>!()\[\]])
)""", re.VERBOSE)


class ExprError(ValueError):
    """The condition does not compile or fails at run time: Argo marks the measurement Error."""


@dataclass(frozen=True)
class Node:
    kind: str          # "num", "bool", "name", "index", "call", "unary", "binary"
    value: object = None
    args: tuple = ()


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.pos = text, tokenize(text), 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExprError(f"expected {value or 'more'} at token {self.pos} of {self.text!r}, got "
                            f"{token[1] if token else 'the end'!r}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def expression(self, min_precedence: int) -> Node:
        left = self.primary()
        while (token := self.peek()) is not None and token[1] in BINARY:
            op = token[1]
            if BINARY[op] < min_precedence:
                break
            self.take()
            right = self.expression(BINARY[op] + 1)
            left = Node("binary", op, (left, right))
        return left

    def primary(self) -> Node:
        kind, value = self.take()
        if value in UNARY and kind != "number":
            node = Node("unary", value, (self.expression(UNARY[value]),))
        elif kind == "number":
            node = Node("num", float(value) if any(c in value for c in ".eE") else int(value))
        elif value == "(":
            node = self.expression(0)
            self.take(")")
        elif kind == "name" and value in ("true", "false"):
            node = Node("bool", value == "true")
        elif kind == "name" and value in FUNCTIONS:
            self.take("(")
            node = Node("call", value, (self.expression(0),))
            self.take(")")
        elif kind == "name":
            node = Node("name", value)
        else:
            raise ExprError(f"unexpected {value!r} in {self.text!r}")
        while (token := self.peek()) is not None and token[1] == "[":  # postfix indexing
            self.take("[")
            node = Node("index", None, (node, self.expression(0)))
            self.take("]")
        return node


NUMERIC = {"int", "float"}


def type_of(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list) and all(isinstance(v, float) for v in value):
        return "list"
    raise ExprError(f"result of type {type(value).__name__} is not what a Prometheus provider passes")


def check(node: Node, result_type: str) -> str:
    """The static type of `node`, as expr.Compile checks it (raises ExprError where expr refuses)."""
    kind, op = node.kind, node.value
    if kind == "num":
        return "int" if isinstance(op, int) else "float"
    if kind == "bool":
        return "bool"
    if kind == "name":
        if op != "result":
            raise ExprError(f"unknown name {op}")
        return result_type
    types = [check(arg, result_type) for arg in node.args]
    if kind == "index":
        if types[0] != "list" or types[1] != "int":
            raise ExprError(f"cannot index {types[0]} with {types[1]}")
        return "float"
    if kind == "call":
        wanted = "list" if op == "len" else NUMERIC
        if types[0] not in ({wanted} if isinstance(wanted, str) else wanted):
            raise ExprError(f"invalid argument for {op} (type {types[0]})")
        return "int" if op == "len" else "bool"
    if kind == "unary":
        if op in ("!", "not"):
            if types[0] != "bool":
                raise ExprError(f"invalid operation: {op} (mismatched type {types[0]})")
            return "bool"
        if types[0] not in NUMERIC:
            raise ExprError(f"invalid operation: {op} (mismatched type {types[0]})")
        return types[0]
    left, right = types
    if op in ("||", "or", "&&", "and"):
        ok, out = left == right == "bool", "bool"
    elif op in ("==", "!="):
        ok, out = left == right or {left, right} <= NUMERIC, "bool"
    elif op in ("<", ">", "<=", ">="):
        ok, out = {left, right} <= NUMERIC, "bool"
    elif op == "/":
        ok, out = {left, right} <= NUMERIC, "float"
    else:  # + - *
        ok, out = {left, right} <= NUMERIC, "int" if left == right == "int" else "float"
    if not ok:
        raise ExprError(f"invalid operation: {op} (mismatched types {left} and {right})")
    return out


def divide(a: float, b: float) -> float:
    """Go's float64 division: x/0 is ±Inf, 0/0 and NaN/0 are NaN."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def run(node: Node, result):
    kind, op = node.kind, node.value
    if kind in ("num", "bool"):
        return op
    if kind == "name":
        return result
    if kind == "index":
        values, i = run(node.args[0], result), run(node.args[1], result)
        j = i + len(values) if i < 0 else i
        if not 0 <= j < len(values):
            raise ExprError(f"index out of range: {i} (array length is {len(values)})")
        return values[j]
    if kind == "call":
        value = run(node.args[0], result)
        return len(value) if op == "len" else (math.isnan(value) if op == "isNaN" else math.isinf(value))
    if kind == "unary":
        value = run(node.args[0], result)
        return (not value) if op in ("!", "not") else (-value if op == "-" else value)
    if op in ("||", "or"):
        return run(node.args[0], result) or run(node.args[1], result)
    if op in ("&&", "and"):
        return run(node.args[0], result) and run(node.args[1], result)
    a, b = run(node.args[0], result), run(node.args[1], result)
    if op == "/":
        return divide(float(a), float(b))
    return {"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b, ">": lambda: a > b,
            "<=": lambda: a <= b, ">=": lambda: a >= b, "+": lambda: a + b, "-": lambda: a - b,
            "*": lambda: a * b}[op]()


def evaluate(condition: str, result) -> bool:
    """The condition's value for `result` (a list of floats for a Prometheus vector, a float for a scalar);
    raises ExprError where Argo's EvalCondition returns an error."""
    node = Parser(condition).parse()
    out = check(node, type_of(result))
    if out != "bool":
        raise ExprError(f"expected bool, but got {out}")
    return run(node, result)
