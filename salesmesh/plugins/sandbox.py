"""Sandboxed Jinja for templates that ops people write (e-mail and survey bodies of action packs).

Templates compile once (`compile_template`, at pack compile time) in an `ImmutableSandboxedEnvironment`
(no attribute escapes, no mutation of the context) and render (`render_template`) with plain dicts only.
The sandbox blocks escapes but not resource use, so rendering is bounded three ways: the output stops
at `MAX_OUTPUT` characters; `*` and `**` refuse operands that would build huge strings, lists or
numbers; and a watchdog interrupts the rendering thread after `MAX_SECONDS` (an asynchronous exception
raised at the next bytecode boundary — pure-Python loops, which is all compiled templates run, always
reach one). Every failure comes back as `TemplateFailed` with a message fit for the failed-actions page.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Mapping
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from salesmesh.plugins.spec import ActionConfigError, ActionImpossible

MAX_OUTPUT = 100_000  # characters
MAX_SECONDS = 1.0
MAX_POWER = 1000  # largest exponent `**` accepts
MAX_SOURCE = 20_000  # the schema's limit on a template text


class TemplateFailed(ActionImpossible):
    """A template could not be rendered within its limits (or raised); retrying gives the same."""


class _Interrupted(BaseException):
    """Raised asynchronously in the rendering thread by the watchdog (a BaseException: nothing catches it)."""


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse `*` and `**` whose result would be huge; otherwise compute them."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                if sized and len(seq) * max(times, 0) > MAX_OUTPUT:
                    raise SecurityError(f"the result of * would exceed {MAX_OUTPUT} items")
            return left * right
        if isinstance(right, (int, float)) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents above {MAX_POWER} are not allowed")
        return left**right


ENV = _Environment(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True)


def compile_template(source: str, pointer: str) -> Template:
    """Compile a template once; raise ActionConfigError at `pointer` when it does not parse."""
    if len(source) > MAX_SOURCE:
        raise ActionConfigError(pointer, f"a template may have at most {MAX_SOURCE} characters")
    try:
        return ENV.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise ActionConfigError(pointer, f"template error{where}: {exc.message or exc}") from None


class _Watchdog:
    """Interrupts one thread once the deadline passes, unless it finished first."""

    def __init__(self, seconds: float) -> None:
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer = threading.Timer(seconds, self._interrupt)
        self.timer.daemon = True

    def _interrupt(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread_id), ctypes.py_object(_Interrupted)
            )

    def finish(self) -> bool:
        """Stop the watchdog; return True when it fired (its exception is then pending or delivered)."""
        with self.lock:
            self.done = True
        self.timer.cancel()
        return self.fired


def _drain() -> None:
    """Let a pending asynchronous exception arrive here (it is raised at the next bytecode boundary)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        pass


def render_template(template: Template, context: Mapping[str, Any], *, what: str = "template") -> str:
    """Render with plain data under the output and time limits; raise TemplateFailed otherwise."""
    watchdog = _Watchdog(MAX_SECONDS)
    parts: list[str] = []
    size = 0
    interrupted = False
    try:
        watchdog.timer.start()
        try:
            for chunk in template.generate(dict(context)):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateFailed(f"{what}: the output passed {MAX_OUTPUT} characters")
                parts.append(chunk)
        except _Interrupted:
            interrupted = True
        finally:
            fired = watchdog.finish()
        if fired and not interrupted:
            _drain()  # the interrupt came just as rendering ended: take it here, not in the caller
    except _Interrupted:
        interrupted = True
    except TemplateFailed:
        raise
    except (TemplateError, SecurityError, RecursionError, ArithmeticError, TypeError, ValueError) as exc:
        raise TemplateFailed(f"{what}: {type(exc).__name__}: {exc}") from None
    if interrupted:
        raise TemplateFailed(f"{what}: rendering took longer than {MAX_SECONDS:g} s")
    return "".join(parts)
