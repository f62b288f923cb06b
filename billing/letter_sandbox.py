"""Letter templates with bounded work: a practice's appeal template is text a biller typed, so rendering it must not
let it take the web process's CPU or memory (a saved template once ran 61 s of CPU in a web thread; another
allocated 1 GB with `{{ 'x' * 10**9 }}`).

Two layers:
- `BoundedSandbox`, Jinja's sandbox with caps: `range()` gives at most MAX_RANGE numbers, `lipsum` is gone, a string
  or list built by `*`, `+` or `%` (or returned by a method or filter) holds at most MAX_TEXT items, a power at most
  MAX_POWER_BITS bits, a method or filter takes no number above MAX_TEXT (`center(10**9)`), and the letter itself is
  at most MAX_TEXT characters. What breaks a cap is refused with a message that says which.
- `render` runs the template in a child process (`python -m billing.letter_sandbox`) with a wall-clock limit
  (RENDER_SECONDS), a CPU limit and an address-space limit (MEMORY_BYTES), so what the caps cannot see (nested loops,
  a string doubled in a namespace) ends the child, not the caller. The child gets the template and plain values
  (JSON) on stdin and an environment without the server's settings or secrets.

This module imports only the standard library and Jinja: the child starts in a fraction of a second."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

MAX_RANGE = 1000  # numbers one range() may give: a letter lists a claim's lines, never thousands of anything
MAX_TEXT = 100_000  # characters of the letter, and items of any string or list a template builds
MAX_POWER_BITS = 4096
RENDER_SECONDS = 5.0  # wall clock for one render, the child's start included
MEMORY_BYTES = 768 * 1024 * 1024  # the child's address space: Python and Jinja take about 40 MB of it

# A printf width or precision ("%0999999999d") would build its whole string before any check could see it.
_PRINTF_SIZE = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateLimit(SecurityError):
    """A template asked for more work than a letter needs."""


class TemplateFailure(Exception):
    """A template that cannot be rendered: `message` says why, `lineno` where (when known)."""

    def __init__(self, message: str, lineno: int | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno
        self.kind = kind


def _sized(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict | set) and len(value) > MAX_TEXT:
        raise TemplateLimit(f"a value of more than {MAX_TEXT:,} characters or items")
    return value


def _check_args(args: tuple, kwargs: dict) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
            raise TemplateLimit(f"a number above {MAX_TEXT:,} given to a method or filter")


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimit(f"range() of more than {MAX_RANGE:,} numbers")
    return rng


def _bounded_filter(func: Any) -> Any:
    # The value filtered comes first (after the context or environment for pass_* filters): only the filter's own
    # arguments are sizes.
    passed = hasattr(func, "jinja_pass_arg")
    skip = 2 if passed else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[skip:], kwargs)
        return _sized(func(*args, **kwargs))

    if passed:  # Jinja reads the marker to pass the context or environment first
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox (no internals, no unsafe methods) with caps on loop counts and on the size of what is built."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, **kwargs)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs: nothing a letter needs
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                if abs(left).bit_length() * right > MAX_POWER_BITS:
                    raise TemplateLimit(f"a power of more than {MAX_POWER_BITS:,} bits")
        elif operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    if len(seq) * count > MAX_TEXT:
                        raise TemplateLimit(f"a repeated string or list of more than {MAX_TEXT:,} items")
        elif operator == "%" and isinstance(left, str):
            for width, precision in _PRINTF_SIZE.findall(left):
                for size in (width, precision):
                    if size == "*" or (size and int(size) > MAX_TEXT):
                        raise TemplateLimit(f"a format width above {MAX_TEXT:,}")
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        if __obj is not _bounded_range:
            _check_args(args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs))


def render_here(body: str, context: dict) -> str:
    """Render in this process with the sandbox's caps but no time or memory limit: what the child runs."""
    env = BoundedSandbox()
    out: list[str] = []
    size = 0
    for chunk in env.from_string(body).generate(context):
        size += len(chunk)
        if size > MAX_TEXT:
            raise TemplateLimit(f"a letter of more than {MAX_TEXT:,} characters")
        out.append(chunk)
    return "".join(out)


def _child_env() -> dict[str, str]:
    """Only what Python needs to find this package and Jinja: none of the server's settings or secrets."""
    root = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": root, "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    if "PATH" in os.environ:
        env["PATH"] = os.environ["PATH"]
    return env


def render(body: str, context: dict, *, seconds: float = RENDER_SECONDS) -> str:
    """The template rendered with `context` (plain values) in a child process with time and memory limits.
    Raises TemplateFailure naming what went wrong (syntax, an unknown value, a limit, the time limit)."""
    request = json.dumps({"body": body, "context": context})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "billing.letter_sandbox"],
            input=request.encode("utf-8"),
            capture_output=True,
            timeout=seconds,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise TemplateFailure(
            f"the template took longer than {seconds:g} s to render (loops inside loops?)", kind="time"
        ) from None
    try:
        answer = json.loads(done.stdout.decode("utf-8"))
    except ValueError:
        answer = None
    if not isinstance(answer, dict):  # killed by its CPU or memory limit before it could answer
        raise TemplateFailure(
            f"the template needed more time or memory than a letter may use (limits: {seconds:g} s, "
            f"{MEMORY_BYTES // 2**20} MB)",
            kind="resources",
        )
    if "text" in answer:
        return answer["text"]
    raise TemplateFailure(answer.get("message", "the template cannot be rendered"), answer.get("lineno"),
                          answer.get("kind", "error"))  # fmt: skip


def _child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    cpu = int(RENDER_SECONDS) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    answer: dict[str, Any]
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        answer = {"text": render_here(request["body"], request["context"])}
    except TemplateSyntaxError as exc:
        answer = {"kind": "syntax", "lineno": exc.lineno, "message": f"template error on line {exc.lineno}: "
                  f"{exc.message}"}  # fmt: skip
    except UndefinedError as exc:
        answer = {"kind": "undefined", "message": f"template names a value a letter does not have: {exc.message}"}
    except TemplateLimit as exc:
        answer = {"kind": "limit", "message": f"template asks for too much: {exc}"}
    except SecurityError as exc:
        answer = {"kind": "security", "message": f"template refused: {exc}"}
    except MemoryError:
        answer = {"kind": "resources", "message": f"the template needed more than {MEMORY_BYTES // 2**20} MB"}
    except RecursionError:
        answer = {"kind": "limit", "message": "template asks for too much: recursion too deep"}
    except Exception as exc:  # noqa: BLE001 - any other failure of a biller's template is an answer, not a crash
        # The exception's class and text only: no traceback (it would show the letter's values).
        answer = {"kind": "error", "message": f"the template failed: {type(exc).__name__}: {str(exc)[:200]}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    _child()
