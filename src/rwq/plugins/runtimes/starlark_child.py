"""The sandbox side of the Starlark runtime: a zygote that forks one sandbox per plugin, in one
self-contained file because a sandbox can neither import rwq nor open files."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import starlark as sl

if not hasattr(sl, "FrozenModule"):  # another package named starlark
    raise ImportError("the Starlark runtime needs starlark-pyo3 (pip install starlark-pyo3)")

HEADER = struct.Struct(">I")
NOBODY = 65534
MAX_OPEN_FILES = 4
"""Descriptors 0-2 (``/dev/null``) and 3 (the channel): nothing more can be opened."""
CHANNEL_FD = 3
CONTROL_BYTES = 1 << 20
MAX_HOST_CALL_BYTES = 1 << 20
"""Largest host call (its arguments' JSON) a sandbox sends; a larger one is refused in the
sandbox with ``invalid_argument`` (the host would take the frame for an attack)."""
IDLE_TRIM_MS = 1000
"""After this long without a request, a sandbox hands its freed heap back to the kernel."""

PRELUDE_FILE = "<rwq>"
OUTPUT_FILE = "<rwq-output>"
OUTPUT_ENCODE_LINE = 4
"""The line of :data:`OUTPUT_FILE` that encodes a hook's result: an error there is an
invalid result, not a failure of the hook."""

_EXTENSIONS = (
    "StructType",
    "RecordType",
    "EnumType",
    "Map",
    "Filter",
    "Partial",
    "Json",
)
"""Library extensions plugins get: no ``print`` (the prelude routes it to the host log), no
``debug``/``breakpoint``/``call_stack`` (they write to the terminal or read stdin)."""

_PRELUDE_HEAD = """\
_RWQ_INF = float("inf")

def _rwq_finite(value):
    # NaN and infinity become None on their way out of Starlark: refused here, by name
    stack = [value]
    for _ in range(1000000):
        if not stack:
            return True
        v = stack.pop()
        t = type(v)
        if t == "float":
            if v >= _RWQ_INF or v <= -_RWQ_INF:  # NaN sorts above +inf in Starlark
                return False
        elif t == "dict":
            stack.extend(v.values())
        elif t == "list" or t == "tuple":
            stack.extend(v)
    return True

def _rwq_call(name, args, kwargs):
    params = _RWQ_PARAMS.get(name, [])
    for i, value in enumerate(args):
        if not _rwq_finite(value):
            argument = params[i] if i < len(params) else "argument %d" % (i + 1)
            return _rwq_nonfinite(name, argument)
    for key in kwargs:
        if not _rwq_finite(kwargs[key]):
            return _rwq_nonfinite(name, key)
    return _rwq_host(name, args, kwargs)

def _rwq_nonfinite(name, argument):
    message = "%s: %s: not a finite number (NaN or infinity)" % (name, argument)
    return {"error": {"code": "invalid_argument", "argument": argument, "message": message}}

def _rwq_fn(name):
    return lambda *args, **kwargs: _rwq_call(name, args, kwargs)

def _rwq_is_error(value):
    return type(value) == "dict" and len(value) == 1 and "error" in value

def print(*args, sep = " "):
    _rwq_host("log", (), {"level": "info", "message": sep.join([str(a) for a in args])[:4096]})

state = struct(
    get = _rwq_state_get,
    set = _rwq_state_set,
    delete = _rwq_state_delete,
    keys = _rwq_state_keys,
)
"""


# -- framing ------------------------------------------------------------------------------


def _recv_exact(chan: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = chan.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def recv_frame(chan: socket.socket) -> tuple[bytes, bytes]:
    """One frame: a 4-byte big-endian length, a type byte and the body."""
    (size,) = HEADER.unpack(_recv_exact(chan, HEADER.size))
    data = _recv_exact(chan, size)
    return data[:1], data[1:]


def send_frame(chan: socket.socket, kind: bytes, body: bytes) -> None:
    chan.sendall(HEADER.pack(len(body) + 1) + kind + body)


# -- the interpreter ----------------------------------------------------------------------


def make_dialect() -> sl.Dialect:
    """Starlark with ``def``, ``lambda`` and top-level statements; no ``load``, no f-strings,
    no type annotations."""
    dialect = sl.Dialect.standard()
    dialect.enable_def = True
    dialect.enable_lambda = True
    dialect.enable_top_level_stmt = True
    dialect.enable_keyword_only_arguments = True
    dialect.enable_load = False
    dialect.enable_f_strings = False
    dialect.enable_types = sl.DialectTypes.DISABLE
    return dialect


def make_globals() -> sl.Globals:
    return sl.Globals.extended_by([getattr(sl.LibraryExtension, e) for e in _EXTENSIONS])


def prelude_source(functions: dict[str, list[str]]) -> str:
    """Starlark run before each plugin: ``rwq.<host function>``, ``state``, ``print``."""
    fields = [f"    {name} = _rwq_fn({json.dumps(name)})," for name in sorted(functions)]
    return (
        f"_RWQ_PARAMS = {json.dumps(functions, sort_keys=True)}\n"
        + _PRELUDE_HEAD
        + "rwq = struct(\n    is_error = _rwq_is_error,\n"
        + "\n".join(fields)
        + "\n)\n"
    )


def output_source(hooks: list[str]) -> str:
    """Starlark run after a plugin: the dispatcher the host calls through."""
    table = ", ".join(f"{json.dumps(h)}: {h}" for h in hooks)
    return (
        f"_rwq_hooks = {{{table}}}\n"
        "def rwq_internal_call(hook, arg):\n"
        "    result = _rwq_hooks[hook](json.decode(arg))\n"
        "    return json.encode(result)\n"  # line OUTPUT_ENCODE_LINE
    )


def describe_error(text: str) -> tuple[str, str, int]:
    """``(location, message, line_of_location)`` of a starlark-pyo3 error text.

    The text is a traceback (``  * FILE:LINE, in FUNCTION`` per frame), ``error: MESSAGE``
    and ``--> FILE:LINE:COL`` (indented by the width of the line number). An error inside
    the runtime's own Starlark (``<rwq>``) is placed at the plugin's innermost frame."""
    message, location, plugin_frame = "", "", ""
    for line in text.splitlines():
        if line.startswith("  * ") and not line.startswith("  * <rwq"):
            plugin_frame = line[4:].split(",", 1)[0]
        elif line.startswith("error: ") and not message:
            message = line[len("error: ") :].strip()
        elif line.lstrip().startswith("--> ") and not location:
            location = line.lstrip()[len("--> ") :].strip()
    if not message:
        message = text.strip().splitlines()[-1] if text.strip() else "error"
    line_no = 0
    parts = location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        line_no = int(parts[1])
    if location.startswith(PRELUDE_FILE) and plugin_frame:
        location = plugin_frame
    return location, message, line_no


class Bridge:
    """The Python side of what the prelude gives Starlark: host calls over the channel and
    the ``state`` dict. A sandbox serves one plugin, so there is one bridge per process,
    built in the zygote with the prelude it backs and pointed at the channel after the fork."""

    def __init__(self, functions: dict[str, list[str]]) -> None:
        self.functions = functions
        self.chan: socket.socket | None = None
        self.state: dict[str, Any] = {}

    def host(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        params = self.functions.get(name, [])
        if len(args) > len(params):
            return _error(
                "invalid_argument", f"{name}: takes at most {len(params)} positional arguments"
            )
        call = dict(zip(params, args, strict=False))
        for key, value in kwargs.items():
            if key in call:
                return _error("invalid_argument", f"{name}: {key} given twice", key)
            call[key] = value
        try:
            body = json.dumps(
                {"f": name, "a": call}, allow_nan=False, separators=(",", ":")
            ).encode()
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            return _error("invalid_argument", f"{name}: arguments must be JSON values ({exc})")
        if len(body) > MAX_HOST_CALL_BYTES:
            return _oversize(name, call, len(body))
        assert self.chan is not None
        send_frame(self.chan, b"H", body)
        kind, reply = recv_frame(self.chan)
        if kind != b"A":
            raise RuntimeError(f"expected a host reply, got frame {kind!r}")
        return json.loads(reply)

    def state_get(self, key: str, default: Any = None) -> Any:
        return self.state.get(_key(key), default)

    def state_set(self, key: str, value: Any) -> None:
        self.state[_key(key)] = value

    def state_delete(self, key: str) -> bool:
        return self.state.pop(_key(key), _MISSING) is not _MISSING

    def state_keys(self) -> list[str]:
        return sorted(self.state)


class Interpreter:
    """What every sandbox shares, built once in the zygote before it forks: the dialect,
    the globals, and the prelude, frozen, which each plugin's module ``load``s (its own
    dialect has no ``load``)."""

    def __init__(self, init: dict[str, Any]) -> None:
        self.functions: dict[str, list[str]] = init["functions"]
        self.hooks: list[str] = init["hooks"]
        self.max_callstack: int = init["max_callstack"]
        self.dialect = make_dialect()
        self.globals = make_globals()
        self.bridge = Bridge(self.functions)
        prelude = sl.Module()
        prelude.add_callable("_rwq_host", self.bridge.host)
        prelude.add_callable("_rwq_state_get", self.bridge.state_get)
        prelude.add_callable("_rwq_state_set", self.bridge.state_set)
        prelude.add_callable("_rwq_state_delete", self.bridge.state_delete)
        prelude.add_callable("_rwq_state_keys", self.bridge.state_keys)
        source = prelude_source(self.functions)
        sl.eval(prelude, sl.parse(PRELUDE_FILE, source, self.dialect), self.globals)
        frozen = prelude.freeze()
        self.loader = sl.FileLoader(lambda _name: frozen)
        loading = make_dialect()
        loading.enable_load = True
        self.imports = sl.parse(PRELUDE_FILE, 'load("rwq", "rwq", "state", "print")\n', loading)
        self.zygote_rss = 0
        self.malloc_trim = _malloc_trim()


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``: freed heap pages of a sandbox are private memory until it is
    called. Loaded in the zygote (a sandbox cannot open files)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class Plugin:
    """The plugin this sandbox runs: its frozen module; its state is the bridge's."""

    def __init__(self, chan: socket.socket, interpreter: Interpreter) -> None:
        self.chan = chan
        self.interpreter = interpreter
        interpreter.bridge.chan = chan
        interpreter.bridge.state = {}
        self.deadline = math.inf
        self.options = sl.EvalOptions(
            check_cancelled=self._cancelled, max_callstack_size=interpreter.max_callstack
        )
        self.module: sl.FrozenModule | None = None
        self.max_output = 1 << 20

    def _cancelled(self) -> bool:
        return time.monotonic() > self.deadline

    def _arm(self, timeout_ms: int) -> None:
        """Cancel evaluation at the deadline; past it (plus slack) the kernel stops the CPU."""
        self.deadline = time.monotonic() + timeout_ms / 1000
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        soft = math.ceil(used + timeout_ms / 1000) + 2
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))

    def load(self, request: dict[str, Any]) -> list[str]:
        it = self.interpreter
        module = sl.Module()
        sl.eval(module, it.imports, it.globals, it.loader)
        self.max_output = int(request["max_output_bytes"])
        ast = sl.parse(request["file"], request["source"], it.dialect)
        self._arm(request["timeout_ms"])
        sl.eval_with(self.options, module, ast, it.globals)
        exports = [hook for hook in it.hooks if _defined(module, hook)]
        sl.eval(module, sl.parse(OUTPUT_FILE, output_source(exports), it.dialect), it.globals)
        self.module = module.freeze()
        return exports

    def call(self, hook: str, timeout_ms: int, arg: str) -> str:
        assert self.module is not None
        self._arm(timeout_ms)
        result = self.module.call_with(self.options, "rwq_internal_call", hook, arg).value
        return str(result)


_MISSING = object()


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"state keys are strings, got {type(key).__name__}")
    return key


def _defined(module: sl.Module, name: str) -> bool:
    """Whether the plugin defines ``name`` as something other than plain data: reading a
    function out of a module fails (it cannot become a Python value); a missing name or
    ``None`` reads as None."""
    try:
        value = module[name]
    except sl.StarlarkError:
        return True
    if value is None:
        return False
    raise TypeError(f"{name} must be a function, got a value ({type(value).__name__})")


def _oversize(name: str, call: dict[str, Any], size: int) -> dict[str, Any]:
    sizes = {key: len(json.dumps(value, separators=(",", ":"))) for key, value in call.items()}
    largest = max(sizes, key=lambda key: sizes[key]) if sizes else None
    return _error(
        "invalid_argument",
        f"{name}: the call is {size} bytes of JSON, over the {MAX_HOST_CALL_BYTES}-byte cap"
        + (f" ({largest} is {sizes[largest]} bytes)" if largest is not None else ""),
        largest,
    )


def _error(code: str, message: str, argument: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if argument is not None:
        error["argument"] = argument
    return {"error": error}


def _fault(kind: str, reason: str, *, fatal: bool = False) -> bytes:
    return json.dumps({"kind": kind, "reason": reason[:2000], "fatal": fatal}).encode()


def _starlark_fault(exc: sl.StarlarkError, *, loading: bool) -> bytes:
    location, message, line = describe_error(str(exc))
    where = f"{location}: " if location else ""
    if message.startswith("Evaluation cancelled"):
        return _fault("timeout", f"{where}stopped at the deadline")
    if loading:
        return _fault("load", f"{where}{message}")
    if location.startswith(f"{OUTPUT_FILE}:") and line == OUTPUT_ENCODE_LINE:
        return _fault("invalid_output", f"the result is not JSON: {message}")
    return _fault("trap", f"{where}{message}")


def handle(plugin: Plugin, kind: bytes, body: bytes) -> None:
    """Answer one frame of the host's (and any host calls it leads to)."""
    chan = plugin.chan
    loading = kind == b"L"
    try:
        if loading:
            exports = plugin.load(json.loads(body))
            send_frame(chan, b"X", json.dumps({"exports": exports}).encode())
        elif kind == b"C":
            hook, timeout, arg = body.split(b"\n", 2)
            result = plugin.call(hook.decode(), int(timeout), arg.decode()).encode()
            if len(result) > plugin.max_output:
                cap = plugin.max_output
                reason = f"the result is {len(result)} bytes, over the {cap}-byte cap"
                send_frame(chan, b"E", _fault("invalid_output", reason))
            else:
                send_frame(chan, b"R", result)
        else:
            _die(chan, "crash", f"unknown frame {kind!r}")
    except sl.StarlarkError as exc:
        if describe_error(str(exc))[1].startswith("MemoryError"):  # in a host function
            _die(chan, "memory", "out of memory")
        send_frame(chan, b"E", _starlark_fault(exc, loading=loading))
    except (TypeError, ValueError) as exc:  # a hook that is not a function
        send_frame(chan, b"E", _fault("load" if loading else "trap", str(exc)))
    except MemoryError:
        _die(chan, "memory", "out of memory")
    except OSError:
        raise
    except BaseException as exc:  # a Rust panic (PanicException) or a bug here
        text = f"{type(exc).__name__}: {exc}"
        lowered = text.lower()
        _die(chan, "memory" if "memory" in lowered or "alloc" in lowered else "crash", text)


def serve(chan: socket.socket, interpreter: Interpreter) -> NoReturn:
    """Answer the host's frames until it closes the channel; trim the heap when idle."""
    plugin = Plugin(chan, interpreter)
    trim = interpreter.malloc_trim
    poller = select.poll()
    poller.register(chan.fileno(), select.POLLIN)
    busy = False
    while True:
        if busy and trim is not None and not poller.poll(IDLE_TRIM_MS):
            trim(0)
            busy = False
            continue
        busy = True
        try:
            kind, body = recv_frame(chan)
            handle(plugin, kind, body)
        except (EOFError, OSError):
            os._exit(0)  # the host closed the channel


def _die(chan: socket.socket, kind: str, reason: str) -> NoReturn:
    with contextlib.suppress(BaseException):
        send_frame(chan, b"E", _fault(kind, reason, fatal=True))
    os._exit(70)


# -- the zygote ---------------------------------------------------------------------------


def _statm() -> tuple[int, int]:
    """``(address space, resident)`` bytes of this process."""
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        fields = os.read(fd, 256).split()
    finally:
        os.close(fd)
    page = os.sysconf("SC_PAGE_SIZE")
    return int(fields[0]) * page, int(fields[1]) * page


def _become_sandbox(
    control: socket.socket, channel_fd: int, memory: int, interpreter: Interpreter
) -> NoReturn:
    """In the forked child: keep only the channel, cap everything, serve."""
    try:
        control.detach()  # its number is closed below; never let the object close it again
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        high = fcntl.fcntl(channel_fd, fcntl.F_DUPFD, 64)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.dup2(high, CHANNEL_FD)
        os.closerange(CHANNEL_FD + 1, 1 << 16)
        address_space = _statm()[0] + memory
        limits = {
            resource.RLIMIT_AS: address_space,
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_FSIZE: 0,
            resource.RLIMIT_NOFILE: MAX_OPEN_FILES,
            resource.RLIMIT_NPROC: 0,
            resource.RLIMIT_MEMLOCK: 0,
        }
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        chan = socket.socket(fileno=CHANNEL_FD)
    except BaseException:
        os._exit(71)
    serve(chan, interpreter)


WARM_UP_ROUNDS = 300
"""Calls the zygote makes before it forks: enough for CPython to specialise the code a
sandbox runs, so sandboxes do not each write their own copy of it."""

_WARM_UP_SOURCE = """\
def render(arg):
    n = state.get("n", 0) + 1
    state.set("n", n)
    rwq.log("debug", "render")
    return [{"type": "text", "text": "n=%d" % n}] + [struct(a = x) for x in range(3)]

def on_event(events):
    return {"changed": len([e for e in events if e.get("type")]) > 0}

def on_timer(arg):
    return [render]

def on_input(arg):
    return 1 // 0
"""


def _warm_up(interpreter: Interpreter) -> None:
    """Run a plugin through the real frame handling before forking, so what every sandbox
    needs is built (and specialised) once and shared."""
    host, sandbox = socket.socketpair()
    plugin = Plugin(sandbox, interpreter)
    events = json.dumps([{"type": "job.completed", "queue": "q", "id": "j", "ts": 1.5}] * 8)
    load = json.dumps(
        {
            "file": "warm.star",
            "source": _WARM_UP_SOURCE,
            "timeout_ms": 10_000,
            "max_output_bytes": 1 << 20,
        }
    )
    handle(plugin, b"L", load.encode())
    recv_frame(host)
    frames = [
        b"render\n10000\n{}",
        b"on_event\n10000\n" + events.encode(),
        b"on_timer\n10000\nnull",
        b"on_input\n10000\nnull",
    ]
    for _ in range(WARM_UP_ROUNDS):
        for frame in frames:
            send_frame(host, b"C", frame)
            if frame.startswith(b"render"):
                send_frame(host, b"A", b"null")  # the answer to its host call, in advance
            kind, body = recv_frame(sandbox)
            handle(plugin, kind, body)
            kind, _ = recv_frame(host)
            if kind == b"H":
                recv_frame(host)
    with contextlib.suppress(sl.StarlarkError):
        sl.parse("bad.star", "def f(:\n", interpreter.dialect)
    host.close()
    sandbox.close()


def _spawn(
    control: socket.socket, request: dict[str, Any], fds: list[int], interpreter: Interpreter
) -> dict[str, Any]:
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return {"error": f"spawn needs one descriptor, got {len(fds)}"}
    pid = os.fork()
    if pid == 0:
        _become_sandbox(control, fds[0], int(request["memory"]), interpreter)
    os.close(fds[0])
    return {"pid": pid, "rss": interpreter.zygote_rss}


def _reap(pid: int, children: set[int]) -> dict[str, Any]:
    if pid not in children:
        return {"pid": pid, "known": False}
    children.discard(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # the host kills first; this is for a confused host
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:
        return {"pid": pid, "known": False}
    return {
        "pid": pid,
        "known": True,
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "maxrss": usage.ru_maxrss * 1024,
    }


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[1]))
    os.environ.clear()  # Python's locale coercion may have set LC_CTYPE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interpreter = Interpreter(json.loads(control.recv(CONTROL_BYTES)))
        _warm_up(interpreter)
    except Exception as exc:
        control.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        sys.exit(1)
    gc.collect()
    gc.freeze()  # what the zygote built stays shared: the collector never touches it again
    interpreter.zygote_rss = _statm()[1]
    control.send(json.dumps({"pid": os.getpid()}).encode())
    children: set[int] = set()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, CONTROL_BYTES, 4)
        except OSError:
            data, fds = b"", []
        if not data:
            break
        request = json.loads(data)
        op = request.get("op")
        if op == "spawn":
            reply = _spawn(control, request, fds, interpreter)
            if "pid" in reply:
                children.add(reply["pid"])
        elif op == "reap":
            reply = _reap(int(request["pid"]), children)
        else:
            reply = {"error": f"unknown op {op!r}"}
        control.send(json.dumps(reply).encode())
    for pid in list(children):
        _reap(pid, children)


if __name__ == "__main__":
    main(sys.argv)
