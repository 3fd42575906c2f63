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
import functools
import importlib
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


def cuda_available() -> bool:
    """True when CuPy sees a usable GPU and the CUDA extension was built."""
    cp = cupy_module()
    if cp is None:
        return False
    try:
        if not cp.is_available():
            return False
    except Exception:
        return False
    return extension("cuda", required=False) is not None


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
    (their checks reject device arrays with a TypeError)."""
    if a is None or isinstance(a, np.ndarray) or backend in ("numpy", "emulator"):
        return a
    cp = cupy_module()
    if cp is not None and isinstance(a, cp.ndarray):
        return a
    if not is_device_array(a):
        return a
    if cp is None or not cuda_available():
        raise BackendUnavailableError(
            f"{name} is a device array ({type(a).__module__}.{type(a).__name__}) but the cuda backend "
            f"is not usable here (CuPy missing, no GPU, or the CUDA extension not built)"
        )
    return as_device_array(a, name)


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


class Engine:
    """Allocation, pointers and stream of one kernel backend."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.ext = extension(backend)
        if backend == "cuda":
            cp = cupy_module()
            if cp is None or not cuda_available():
                raise BackendUnavailableError(
                    "backend='cuda': no usable CUDA GPU (cupy.is_available() is False or CuPy is "
                    "missing); use backend='emulator' or 'numpy'"
                )
            device = cp.cuda.Device()
            cc = str(device.compute_capability)  # CuPy gives e.g. "90" for sm_90
            major, minor = int(cc[:-1]), int(cc[-1])
            if major < 8:
                raise BackendUnavailableError(
                    f"backend='cuda': GPU {device.id} has compute capability {major}.{minor}; "
                    f"this build has code for sm_80 and newer only (MW_CUDA_ARCHITECTURES)"
                )
            self.xp = cp
        else:
            self.xp = np

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
