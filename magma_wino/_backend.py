"""Backends: where arrays live and which compiled module runs the kernels.

=========  ==========================================  ===================================
backend    arrays                                      what runs
=========  ==========================================  ===================================
cuda       CuPy arrays, or anything exposing           the CUDA kernels, on CuPy's current
           ``__cuda_array_interface__`` or DLPack      stream, workspace from CuPy's pool
emulator   NumPy arrays                                the same kernel source on the CPU
numpy      NumPy arrays                                the NumPy reference
=========  ==========================================  ===================================

``auto`` picks ``cuda`` for device arrays and ``numpy`` for host arrays.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import re
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendUnavailableError

BACKENDS = ("auto", "cuda", "emulator", "numpy")
_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}


@functools.cache
def cupy_module() -> ModuleType | None:
    """CuPy if it can be imported (it imports without a driver), else None."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # ImportError, or a broken CUDA installation
        return None


def to_host(a: Any) -> np.ndarray:
    """A NumPy array of ``a``: a CuPy array is copied to the host, anything else goes
    through ``np.asarray``."""
    cp = cupy_module()
    if cp is not None and isinstance(a, cp.ndarray):
        return a.get()
    return np.asarray(a)


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """None when the cuda backend is usable in this process; otherwise why not, in words.

    Both runtimes are asked: CuPy's (``cupy.is_available()``) and the CUDA extension's own
    statically linked runtime (``runtime_info()``), which can disagree (e.g. a driver too
    old for the runtime the extension was built with).  Cached: it does not change while
    the process lives (tests clear it with ``cuda_unavailable_reason.cache_clear()``).
    """
    cp = cupy_module()
    if cp is None:
        return "CuPy is not installed (pip install 'magma-wino[cuda]')"
    ext = extension("cuda", required=False)
    if ext is None:
        return "the CUDA extension was not built (nvcc was not found when the package was installed)"
    try:
        info = ext.runtime_info()
    except Exception as exc:  # pragma: no cover - a broken build
        return f"the CUDA extension's runtime failed: {exc}"
    if int(info.get("device_count", 0)) < 1:
        return f"the CUDA extension's runtime sees no GPU ({info.get('device_error') or 'no device'})"
    try:
        if not cp.is_available():
            return "CuPy sees no usable GPU (cupy.is_available() is False)"
    except Exception as exc:  # pragma: no cover - a broken CuPy installation
        return f"CuPy failed to query the GPU: {exc}"
    return None


def cuda_available() -> bool:
    """True when both CuPy and the CUDA extension's runtime see a GPU (see
    :func:`cuda_unavailable_reason`)."""
    return cuda_unavailable_reason() is None


def parse_architectures(arch: str) -> list[tuple[int, int, str, bool, bool]]:
    """CMake ``CUDA_ARCHITECTURES`` of a build (``"80-real,90-real,90-virtual"``; ``,`` or
    ``;`` separated) as ``(major, minor, suffix, real, virtual)`` per entry; a bare number
    means real code and PTX, as in CMake; ``suffix`` is ``""``, ``"a"`` or ``"f"``."""
    out = []
    for item in re.split(r"[,;\s]+", arch.strip()):
        if not item:
            continue
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)([af]?)(?:-(real|virtual))?", item)
        if m is None:
            raise ValueError(f"arch: cannot parse CUDA architecture {item!r} in {arch!r}")
        major, minor = divmod(int(m[1]), 10)
        kind = m[3]
        out.append((major, minor, m[2], kind in (None, "real"), kind in (None, "virtual")))
    return out


def build_runs_on(arch: str, capability: tuple[int, int]) -> bool:
    """Whether a build for ``arch`` has code a GPU of compute ``capability`` can run.

    CUDA's rules: real code (a cubin) for sm_XY runs on X.Z with Z >= Y (same major);
    arch-specific code (sm_90a) only on exactly 9.0; PTX for compute_XY is JIT-compiled by
    the driver for any capability >= X.Y.
    """
    cmaj, cmin = capability
    for major, minor, suffix, real, virtual in parse_architectures(arch):
        if real and major == cmaj and (minor == cmin if suffix == "a" else minor <= cmin):
            return True
        if virtual and not suffix and (major, minor) <= (cmaj, cmin):
            return True
    return False


@functools.cache
def _import_extension(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"magma_wino.{name}")
    except ImportError:
        return None


def extension(backend: str, required: bool = True) -> ModuleType | None:
    """The compiled module of a kernel backend (``_cuda`` or ``_emu``)."""
    mod = _import_extension("_cuda" if backend == "cuda" else "_emu")
    if mod is None and required:
        if backend == "cuda":
            raise BackendUnavailableError(
                "backend='cuda': the CUDA extension was not built (nvcc was not found when the "
                "package was installed); reinstall with nvcc on PATH, or use backend='emulator' "
                "or 'numpy'"
            )
        raise BackendUnavailableError("backend='emulator': the emulator extension magma_wino._emu is missing")
    return mod


def is_device_array(a: Any) -> bool:
    """True for arrays in GPU memory: CuPy arrays, ``__cuda_array_interface__`` or a
    DLPack capsule provider whose device is CUDA."""
    if a is None or isinstance(a, np.ndarray):
        return False
    try:  # a property can raise (e.g. PyTorch for tensors that require grad)
        if hasattr(a, "__cuda_array_interface__"):
            return True
    except Exception:
        pass
    dev = getattr(type(a), "__dlpack_device__", None)
    if dev is not None:
        try:
            # kDLCUDA, kDLCUDAManaged.  Pinned host memory (kDLCUDAHost) is host memory.
            return int(a.__dlpack_device__()[0]) in (2, 13)
        except Exception:
            return False
    return False


def resolve(backend: str, *arrays: Any) -> str:
    """Turn ``backend`` (possibly ``auto``) into a concrete backend name."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "cuda" if any(is_device_array(a) for a in arrays if a is not None) else "numpy"


def coerce(a: Any, name: str, backend: str = "auto") -> Any:
    """Entry-point normalisation: NumPy and CuPy arrays (and None) pass through; any other
    device array (``__cuda_array_interface__`` or CUDA DLPack, e.g. a PyTorch CUDA tensor)
    becomes a zero-copy CuPy view when the backend may be cuda, so shape/dtype checks and
    the cuda backend see one kind of device array.  For the host backends it is left as is
    (their checks reject device arrays with a TypeError).  A host array-like that offers
    DLPack or ``__array__`` (a PyTorch CPU tensor) becomes a NumPy view on every backend."""
    if a is None or isinstance(a, np.ndarray):
        return a
    cp = cupy_module()
    if cp is not None and isinstance(a, cp.ndarray):
        return a
    if not is_device_array(a):
        return _host_view(a, name)
    if backend in ("numpy", "emulator"):
        return a  # the host backends' checks reject it by name
    reason = cuda_unavailable_reason()
    if cp is None or reason is not None:
        raise BackendUnavailableError(
            f"{name} is a device array ({type(a).__module__}.{type(a).__name__}) but the cuda backend "
            f"is not usable here: {reason}"
        )
    return as_device_array(a, name)


def _host_view(a: Any, name: str) -> Any:
    """A host array-like that is not a NumPy array (a PyTorch CPU tensor, a JAX CPU array, any
    DLPack or ``__array__`` provider) as a NumPy array, zero copy where the producer allows;
    anything else (lists, scalars, None-like objects) unchanged, for the callers' own checks."""
    if isinstance(a, (list, tuple, int, float, complex, str, bytes)):
        return a
    try:
        if hasattr(type(a), "__dlpack__") and hasattr(type(a), "__dlpack_device__"):
            return np.from_dlpack(a)
        if hasattr(type(a), "__array__"):
            return np.asarray(a)
    except (BufferError, RuntimeError, TypeError) as exc:  # e.g. a tensor that requires grad
        raise TypeError(f"{name} ({type(a).__module__}.{type(a).__name__}) could not be viewed as a NumPy "
                        f"array: {exc}") from exc
    return a


def as_device_array(a: Any, name: str) -> Any:
    """A CuPy view of a device array (zero copy) for the cuda backend; TypeError for host arrays."""
    cp = cupy_module()
    if cp is None:
        raise BackendUnavailableError("backend='cuda' needs CuPy (pip install 'magma-wino[cuda]')")
    if isinstance(a, cp.ndarray):
        return a
    if isinstance(a, np.ndarray) or not is_device_array(a):
        raise TypeError(
            f"{name}: the cuda backend needs a device array (CuPy, __cuda_array_interface__ or "
            f"DLPack), got {type(a).__module__}.{type(a).__name__}; move it with cupy.asarray({name}) "
            f"or use backend='numpy' or 'emulator'"
        )
    # DLPack first: the producer then makes CuPy's current stream wait for its pending work
    # (an event, no host block).  __cuda_array_interface__ v2 (PyTorch's) carries no stream
    # at all, and v3 makes CuPy synchronise the producer's stream from the host.
    if hasattr(type(a), "__dlpack__") and hasattr(type(a), "__dlpack_device__"):
        return cp.from_dlpack(a)
    return cp.asarray(a)


# Foreign device arrays (converted by coerce) referenced by launches still in flight: the
# CuPy view does not own the memory, so the producer's allocator could reuse it as soon as
# the caller drops a temporary.  Each entry holds (event after the last launch, objects).
_in_flight: collections.deque[tuple[Any, tuple[Any, ...]]] = collections.deque()


def keep_alive(event: Any, objects: tuple[Any, ...]) -> None:
    """Hold ``objects`` until ``event`` has completed (checked on later calls)."""
    while _in_flight and _in_flight[0][0].done:
        _in_flight.popleft()
    if objects:
        _in_flight.append((event, objects))


def as_host_array(a: Any, name: str, backend: str) -> np.ndarray:
    """The NumPy array for the numpy / emulator backends; TypeError for device arrays."""
    if is_device_array(a):
        raise TypeError(
            f"{name}: backend={backend!r} runs on host (NumPy) arrays, got a device array "
            f"({type(a).__module__}.{type(a).__name__}); use backend='cuda' or copy it with .get()"
        )
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray for backend={backend!r}, got {type(a).__name__}")
    return a


def kernel_dtype(dt: Any, name: str) -> int:
    """The C ABI dtype code; TypeError for anything but float32 / float64."""
    dt = np.dtype(dt)
    if dt not in _DTYPES:
        raise TypeError(f"{name} must be float32 or float64 for the kernel backends, got {dt}")
    return _DTYPES[dt]


def check_contiguous(a: Any, name: str) -> None:
    """The kernels take C-contiguous arrays; others are rejected, never silently copied."""
    flags = getattr(a, "flags", None)
    if flags is not None and not flags["C_CONTIGUOUS"]:
        raise ValueError(
            f"{name} must be C-contiguous (row-major, positive strides), got strides "
            f"{tuple(a.strides)} for shape {tuple(a.shape)}; pass a contiguous copy "
            f"(e.g. numpy.ascontiguousarray / cupy.ascontiguousarray)"
        )


def device_of(a: Any) -> int | None:
    """The GPU ordinal of a CuPy array, else None."""
    cp = cupy_module()
    if cp is not None and isinstance(a, cp.ndarray):
        return int(a.device.id)
    return None


def like(host: np.ndarray, ref: Any) -> Any:
    """``host`` where ``ref`` lives: a new CuPy array on ``ref``'s GPU if ``ref`` is a CuPy
    array, else ``host`` itself."""
    dev = device_of(ref)
    if dev is None:
        return host
    cp = cupy_module()
    with cp.cuda.Device(dev):
        return cp.asarray(host)


class Engine:
    """Allocation, pointers and stream of one kernel backend (for cuda: on one GPU,
    ``device``, by default CuPy's current one)."""

    def __init__(self, backend: str, device: int | None = None) -> None:
        self.backend = backend
        self.ext = extension(backend)
        self.device: int | None = None
        if backend == "cuda":
            cp = cupy_module()
            reason = cuda_unavailable_reason()
            if cp is None or reason is not None:
                raise BackendUnavailableError(
                    f"backend='cuda': no usable CUDA GPU ({reason}); use backend='emulator' or 'numpy'"
                )
            dev = cp.cuda.Device(device) if device is not None else cp.cuda.Device()
            cc = str(dev.compute_capability)  # CuPy gives e.g. "90" for sm_90, "120" for sm_120
            capability = (int(cc[:-1]), int(cc[-1]))
            arch = self.ext.build_info().get("arch", "")
            if not build_runs_on(arch, capability):
                raise BackendUnavailableError(
                    f"backend='cuda': GPU {dev.id} has compute capability {capability[0]}.{capability[1]}, "
                    f"but this build has code only for CUDA architectures {arch!r} "
                    f"(reinstall with pip's -Ccmake.define.MW_CUDA_ARCHITECTURES={cc}-real); use backend='emulator' or 'numpy'"
                )
            self.device = int(dev.id)
            self.capability: tuple[int, int] | None = capability
            self.xp = cp
        else:
            self.capability = None
            self.xp = np

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """``with engine.scope():`` makes the engine's GPU current (a no-op on the host)."""
        if self.device is None:
            return contextlib.nullcontext()
        return self.xp.cuda.Device(self.device)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        # cupy.empty draws from CuPy's memory pool: workspaces are recycled between calls.
        return self.xp.empty(shape, dtype=dtype)

    def asarray(self, a: Any, name: str) -> Any:
        if self.backend == "cuda":
            return as_device_array(a, name)
        return as_host_array(a, name, self.backend)

    def ptr(self, a: Any) -> int:
        if a is None:
            return 0
        return int(a.data.ptr) if self.backend == "cuda" else int(a.ctypes.data)

    def stream(self) -> int:
        if self.backend == "cuda":
            return int(self.xp.cuda.get_current_stream().ptr)
        return 0
