"""``edgeseg serve``: a bundle's runner behind a real Triton Inference Server (HTTP, gRPC, dynamic batching,
health and Prometheus metrics), on a CPU-only machine as on a GPU one.

The server is the ``tritonserver`` binary and Python backend that the ``nvidia-pytriton`` wheel ships (Triton 2.51;
``pip install edgeseg[serve]``). edgeseg does not use pytriton's Python API: it writes a model repository with one
Python-backend model (:mod:`edgeseg.runtime.triton_model`, which loads the bundle's runner exactly as ``edgeseg
run`` does) into a private folder and runs the binary on it, so each request goes HTTP/gRPC -> Triton's dynamic
batcher -> the Python backend's stub process -> the runner, with no further hop.

Why not pytriton itself, and what had to be fixed (found on this project's Python 3.11.7, pyenv, NumPy 2.4):

1. **The stub loaded another Python.** The backend stub (``python_backend_stubs/3.11/triton_python_backend_stub``)
   links ``libpython3.11.so.1.0`` dynamically; the loader finds the system's (Debian's 3.11.2, in
   ``/lib/x86_64-linux-gnu``) while the stub's ``sys.prefix``, and so the stdlib it imports, is the running
   interpreter's (3.11.7). The 3.11.7 stdlib's ``multiprocessing.resource_tracker`` calls
   ``RLock._recursion_count()``, a C method added in 3.11.6 (CPython gh-109629, backported), which 3.11.2's
   ``_thread`` lacks: pytriton's proxy starts its shared-memory tensor store from the stub and fails with
   ``AttributeError: '_thread.RLock' object has no attribute '_recursion_count'`` (pytriton issue #51 reports the
   same on 3.11.7). Fix: the server's ``LD_LIBRARY_PATH`` starts with a folder holding one symlink, to this
   interpreter's own ``libpython`` (``sysconfig``'s LIBDIR/INSTSONAME; pyenv builds it with --enable-shared), so
   the stub runs the same build as edgeseg. The model also compares the stub's ``sys.version`` with edgeseg's and
   refuses to load on a mismatch (a Python without a shared libpython), instead of failing later in the stdlib.
2. **NumPy 2 in the stub.** With the right libpython, pytriton's models loaded but answered with empty outputs:
   the stub's ``pb_utils.Tensor(name, array)`` and ``as_numpy()`` read NumPy 1's array-descriptor layout, and
   under NumPy 1 the DLPack way out fails instead (see :mod:`edgeseg.runtime.triton_model`). edgeseg's model moves
   tensors the way that works for the NumPy installed; pytriton's proxy cannot be changed that way.

pytriton's Python API is not used for those reasons and two more: it puts a ZeroMQ/shared-memory hop between the
stub and the Python process that runs the model, and its shutdown waited out its 30 s exit timeout here. Whether
it works under NumPy 1 with fix 1 was not checked.

Each server gets its own Python-backend shared-memory prefix, so several can run on one machine. SIGINT/SIGTERM
(Ctrl-C, ``docker stop``) stop Triton gracefully (in-flight requests finish, stubs exit), then the private folder
is removed.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import errno
import importlib.util
import json
import logging
import os
import re
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError, one_line
from edgeseg.runtime.backends import backend_missing
from edgeseg.runtime.bundle import LABELS, Bundle, open_bundle, tensor_specs
from edgeseg.runtime.triton_model import ERROR_MARK, RUNNER_INFO, SETTINGS

log = logging.getLogger(__name__)

SERVE_BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
INSTALL_HINT = "pip install 'edgeseg[serve]' (nvidia-pytriton ships the tritonserver binary)"
TRITON_DTYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                 "float16": "TYPE_FP16", "float32": "TYPE_FP32", "bool": "TYPE_BOOL"}
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
TENSOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")
EXIT_TIMEOUT_S = 10  # Triton's wait for in-flight requests on shutdown; edgeseg kills it this much later
SHM_BYTES = 16 << 20  # the Python backend's shared memory per stub, and its growth step
# What Triton logs at start on a machine without a GPU (CUDA, NVML, DCGM absent): shown with --verbose only
CPU_ONLY_NOISE = ("CudaDriverHelper has not been initialized", "Unable to allocate pinned system memory",
                  "Failed to initialize NVML", "DCGM unable to start", "CUDA driver version is insufficient")
_LOG_LINE = re.compile(r"([IWE])\d{4} [\d:.]+\s+\d+ [^\]]*\] (.*)")


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: where to listen, the batching, and the runner to load (as ``edgeseg run`` takes it)."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 8
    max_queue_delay_us: int = 1000
    backend: str = "auto"
    precision: str = "fp32"
    threads: int | None = None
    startup_timeout_s: float = 120.0
    verbose: bool = False


@dataclass(frozen=True)
class TritonInstall:
    """The Triton files nvidia-pytriton's wheel ships: the server, the Python backend and the stub for this
    Python, and the shared libraries they need."""

    server: Path
    python_backend: Path
    stub: Path
    libs: Path


def find_triton() -> TritonInstall:
    """The installed Triton, found without importing pytriton; one line saying what is missing otherwise."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise EdgesegError(f"edgeseg serve needs Triton Inference Server: {INSTALL_HINT}")
    root = Path(spec.origin).parent
    dist = root / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    install = TritonInstall(dist / "bin" / "tritonserver", dist / "backends" / "python",
                            dist / "python_backend_stubs" / version / "triton_python_backend_stub",
                            root.parent / "nvidia_pytriton.libs")
    if not install.server.is_file() or not (install.python_backend / "libtriton_python.so").is_file():
        raise EdgesegError(f"{dist} has no tritonserver binary with its Python backend; reinstall: {INSTALL_HINT}")
    if not install.stub.is_file():
        have = sorted(p.name for p in (dist / "python_backend_stubs").glob("*"))
        raise EdgesegError(f"nvidia-pytriton has no Python backend stub for Python {version} (it has "
                           f"{', '.join(have) or 'none'}); run edgeseg serve under one of those")
    return install


def model_name(bundle: Bundle) -> str:
    """The Triton model name: the bundle's model name, which must be a plain folder name."""
    name = bundle.model.name
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise EdgesegError(f"{bundle.root}: model name {name!r} in the manifest cannot name a Triton model (letters, "
                           f"digits, '_', '.', '-')")
    return name


def model_tensors(bundle: Bundle) -> tuple[list[dict], list[dict]]:
    """The bundle's inputs and outputs as Triton sees them: name, numpy dtype, Triton dtype and the shape of one
    row (the batch dimension is Triton's; another named dimension is -1)."""
    manifest = bundle.manifest
    inputs, outputs = manifest.inputs, manifest.outputs
    if not inputs or not outputs:  # a bundle from before the manifest listed its tensors
        inputs, outputs = tensor_specs(bundle.input_names, tuple(o.name for o in outputs) or (LABELS,),
                                       bundle.batch, bundle.input_size, len(bundle.model.classes),
                                       frame=bundle.frame_size, frame_format=manifest.input.frame_format)

    def one(spec) -> dict:
        if not TENSOR_NAME.fullmatch(spec.name):
            raise EdgesegError(f"{bundle.root}: tensor name {spec.name!r} in the manifest cannot name a Triton tensor")
        dtype = np.dtype(spec.dtype).name
        if dtype not in TRITON_DTYPES:
            raise EdgesegError(f"{bundle.root}: tensor {spec.name!r} is {dtype}, which edgeseg serve does not map "
                               f"to a Triton type")
        dims = [d if isinstance(d, int) else -1 for d in spec.shape[1:]]
        return {"name": spec.name, "dtype": dtype, "triton": TRITON_DTYPES[dtype], "dims": dims}

    return [one(s) for s in inputs], [one(s) for s in outputs]


def model_config(name: str, inputs: list[dict], outputs: list[dict], options: ServeOptions) -> str:
    """``config.pbtxt``: a Python-backend model on the CPU, batches of up to ``max_batch`` rows gathered by the
    dynamic batcher."""
    def tensors(kind: str, specs: list[dict]) -> str:
        rows = ",\n".join(f'  {{ name: "{s["name"]}" data_type: {s["triton"]} dims: [ {", ".join(map(str, s["dims"]))} ] }}'  # noqa: E501
                          for s in specs)
        return f"{kind} [\n{rows}\n]\n"

    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {options.max_batch}\n'
            + tensors("input", inputs) + tensors("output", outputs)
            + f"dynamic_batching {{ max_queue_delay_microseconds: {options.max_queue_delay_us} }}\n"
            + "instance_group [ { kind: KIND_CPU count: 1 } ]\n")


MODEL_PY = '''"""Written by edgeseg serve: the bundle's runner as a Triton Python-backend model."""
import json
import os
import site
import sys

_settings = json.load(open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serve.json")))
for _d in _settings["site_dirs"]:  # the Python environment edgeseg runs in, .pth files (editable installs) included
    if _d not in sys.path and os.path.isdir(_d):
        site.addsitedir(_d)
for _p in _settings["sys_path"]:
    if _p not in sys.path:
        sys.path.append(_p)

from edgeseg.runtime.triton_model import TritonPythonModel  # noqa: E402,F401
'''


def _site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return dirs


def write_repository(work: Path, bundle: Bundle, options: ServeOptions, install: TritonInstall) -> Path:
    """Lay out the private folder Triton runs on: the Python backend (links to the installed one, with the stub
    for this Python), a folder with a link to this interpreter's libpython, and the model repository. Returns the
    model's folder."""
    backend = work / "backends" / "python"
    backend.mkdir(parents=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (backend / f).symlink_to(install.python_backend / f)
    (backend / "triton_python_backend_stub").symlink_to(install.stub)
    libpython = own_libpython()
    (work / "lib").mkdir()
    if libpython is not None:
        (work / "lib" / libpython.name).symlink_to(libpython)
    else:
        log.warning("this Python has no shared libpython: Triton's stub loads the system's, and the model refuses "
                    "to load if that is another Python build")
    name = model_name(bundle)
    inputs, outputs = model_tensors(bundle)
    model = work / "models" / name
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(model_config(name, inputs, outputs, options))
    (model / "1" / "model.py").write_text(MODEL_PY)
    settings = {"bundle": str(bundle.root.resolve()), "backend": options.backend, "precision": options.precision,
                "threads": options.threads, "python": sys.version, "inputs": inputs, "outputs": outputs,
                "site_dirs": _site_dirs(), "sys_path": [os.path.abspath(p or os.curdir) for p in sys.path]}
    (model / SETTINGS).write_text(json.dumps(settings, indent=2))
    return model


def own_libpython() -> Path | None:
    """This interpreter's shared libpython (what the stub must load), or None for a statically linked Python."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    path = Path(libdir or "") / (soname or "")
    return path if soname and path.is_file() else None


def check_ports(options: ServeOptions) -> None:
    """Each port distinct and free on ``host``, else one line naming the option (Triton's own failure comes only
    after the model has loaded, in its log)."""
    ports = {"--port": options.http_port, "--grpc-port": options.grpc_port, "--metrics-port": options.metrics_port}
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port in seen:
            raise EdgesegError(f"{flag} and {seen[port]} are both {port}: give each its own port")
        seen[port] = flag
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((options.host, port))
            except socket.gaierror as exc:
                raise EdgesegError(f"--host {options.host}: {exc.strerror}") from None
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise EdgesegError(f"port {port} ({flag}) is already in use on {options.host}: stop what "
                                       f"listens there or choose another port") from None
                raise EdgesegError(f"cannot listen on {options.host}:{port} ({flag}): {exc.strerror}") from None


def _parent_death_signal() -> None:  # runs in the child before exec: Triton ends if edgeseg is killed outright
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TritonProcess:
    """The ``tritonserver`` process: started on a model repository, its log read by a thread (held until it is
    ready, then forwarded to :mod:`logging`), stopped gracefully."""

    def __init__(self, install: TritonInstall, work: Path, options: ServeOptions) -> None:
        self.install, self.work, self.options = install, work, options
        self.proc: subprocess.Popen | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self.ready = False
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        o = self.options
        python = f"shm-region-prefix-name=edgeseg{os.getpid()}_"
        return [str(self.install.server), f"--model-repository={self.work / 'models'}",
                f"--backend-directory={self.work / 'backends'}", "--model-control-mode=none",
                f"--http-address={o.host}", f"--http-port={o.http_port}",
                f"--grpc-address={o.host}", f"--grpc-port={o.grpc_port}",
                f"--metrics-address={o.host}", f"--metrics-port={o.metrics_port}", "--allow-metrics=true",
                "--allow-gpu-metrics=false", "--allow-cpu-metrics=true", "--pinned-memory-pool-byte-size=0",
                "--strict-readiness=true", "--exit-on-error=true", f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
                f"--log-info={'true' if o.verbose else 'false'}", "--log-warning=true", "--log-error=true",
                f"--backend-config=python,{python}", f"--backend-config=python,shm-default-byte-size={SHM_BYTES}",
                f"--backend-config=python,shm-growth-byte-size={SHM_BYTES}"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(self.work / "lib"), str(self.install.libs)] + ([env["LD_LIBRARY_PATH"]]
                                                                   if env.get("LD_LIBRARY_PATH") else [])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        return env

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), env=self.environment(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                     start_new_session=True, preexec_fn=_parent_death_signal)
        self._reader = threading.Thread(target=self._read, name="tritonserver-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            self.lines.append(line)
            level, message = parse_log_line(line)
            if not self.ready or any(n in message for n in CPU_ONLY_NOISE) or level == "I" or (
                    level is None and not message.startswith("error")):  # "Signal (2) received." and the like
                log.debug("tritonserver: %s", line)
            elif level in ("E", None):
                log.error("tritonserver: %s", message)
            else:
                log.warning("tritonserver: %s", message)

    def address(self, port: int) -> str:
        """``host:port`` to reach a port of this server from this machine."""
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"{host}:{port}"

    def base_url(self, port: int) -> str:
        return f"http://{self.address(port)}"

    def wait_ready(self, model: str) -> dict:
        """Block until Triton says it is ready (model loaded); its metadata. One line on failure: the model's
        own error when it refused to load, else Triton's last error."""
        assert self.proc is not None
        deadline = time.monotonic() + self.options.startup_timeout_s
        url = self.base_url(self.options.http_port)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._drain()
                raise EdgesegError(self.failure(f"tritonserver exited with code {self.proc.returncode} before it "
                                                f"was ready"))
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        else:
            raise EdgesegError(self.failure(f"tritonserver was not ready after {self.options.startup_timeout_s:g} s "
                                            f"(--startup-timeout)"))
        self.ready = True
        for line in list(self.lines):
            level, message = parse_log_line(line)
            if level in ("W", "E") and not any(n in message for n in CPU_ONLY_NOISE):
                log.warning("tritonserver: %s", message)
        with urllib.request.urlopen(f"{url}/v2", timeout=5) as reply:
            return json.load(reply)

    def _drain(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def failure(self, what: str) -> str:
        """``what`` with the reason from Triton's log: the model's own message when it refused to load, else the
        last error Triton printed."""
        errors = []
        for line in self.lines:
            level, message = parse_log_line(line)
            if ERROR_MARK in message:
                reason = message.split(ERROR_MARK, 1)[1].split("\n", 1)[0]
                return f"the model did not load: {one_line(reason)}"
            if level == "E" or message.startswith("error:"):
                errors.append(message)
        return f"{what}: {one_line(errors[-1])}" if errors else what

    def wait(self) -> int:
        """Block while Triton runs; its exit code when it ends by itself."""
        assert self.proc is not None
        while True:
            try:
                return self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        """SIGINT (Triton finishes in-flight requests and ends its stubs), then SIGKILL if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            self._drain()
            return
        log.info("stopping Triton")
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver did not stop in %d s: killed", EXIT_TIMEOUT_S + 10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._drain()


def parse_log_line(line: str) -> tuple[str | None, str]:
    """(level I/W/E or None, message with Triton's quoting undone) of one line of Triton's log."""
    m = _LOG_LINE.fullmatch(line)
    if not m:
        return None, line
    message = m.group(2)
    if len(message) >= 2 and message[0] == message[-1] == '"':
        with contextlib.suppress(ValueError):
            message = json.loads(message)
    return m.group(1), message


def preflight(bundle_path: str | os.PathLike, options: ServeOptions) -> tuple[Bundle, TritonInstall]:
    """Everything checked before Triton starts: the bundle, its model name and tensors, the backend, Triton
    itself and the ports."""
    bundle = open_bundle(bundle_path)
    model_name(bundle)
    model_tensors(bundle)
    if options.backend != "auto" and (reason := backend_missing(options.backend)) is not None:
        raise EdgesegError(f"backend {options.backend} cannot run here: {reason}")
    install = find_triton()
    check_ports(options)
    return bundle, install


def serve(bundle_path: str | os.PathLike, options: ServeOptions,
          on_ready: Callable[[dict], None] | None = None) -> int:
    """Serve the bundle until Triton ends or edgeseg is interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM as the
    CLI raises it), stopping Triton and removing its folder on the way out. Triton ending by itself is an error.
    Once the model is loaded, ``on_ready`` receives the endpoints (model, Triton version, runner, URLs); without
    it they are logged."""
    bundle, install = preflight(bundle_path, options)
    name = model_name(bundle)
    with tempfile.TemporaryDirectory(prefix="edgeseg-serve-") as tmp:
        work = Path(tmp)
        model_dir = write_repository(work, bundle, options, install)
        server = TritonProcess(install, work, options)
        log.info("starting Triton on %s (model %s, batches of up to %d)", bundle.root, name, options.max_batch)
        try:
            server.start()
            meta = server.wait_ready(name)
            runner = json.loads((model_dir / RUNNER_INFO).read_text())
            http, metrics = server.base_url(options.http_port), server.base_url(options.metrics_port)
            batch = f"batch {runner['batch']}" if runner["batch"] else "any batch"
            endpoints = {"model": name, "triton": meta.get("version"), "backend": runner["backend"],
                         "runner": Path(runner["runner"]).name, "batch": runner["batch"],
                         "max_batch": options.max_batch, "http": f"{http}/v2/models/{name}/infer",
                         "grpc": server.address(options.grpc_port), "ready": f"{http}/v2/health/ready",
                         "metrics": f"{metrics}/metrics"}
            log.info("Triton %s is serving %s: %s runner (%s), %s, up to %d rows per batch", meta.get("version"),
                     name, runner["backend"], Path(runner["runner"]).name, batch, options.max_batch)
            if on_ready is not None:
                on_ready(endpoints)
            else:
                for key in ("http", "grpc", "ready", "metrics"):
                    log.info("  %-8s %s", key, endpoints[key])
            log.info("Ctrl-C or SIGTERM stops it")
            code = server.wait()
            server._drain()
            raise EdgesegError(server.failure(f"tritonserver exited with code {code}"))
        finally:
            server.stop()
