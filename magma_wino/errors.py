"""Exception hierarchy.

Errors from the C ABI carry the status name (``status``) and the message the C layer
wrote (``detail``).  Argument errors found in Python are plain ``ValueError`` /
``TypeError``; :class:`InvalidArgumentError` and :class:`UnsupportedError` derive from
``ValueError`` too, so ``except ValueError`` catches every bad-input error.
"""

from __future__ import annotations


class MagmaWinoError(RuntimeError):
    """Base class of the errors raised by the compiled backends."""

    def __init__(self, message: str, status: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class InvalidArgumentError(MagmaWinoError, ValueError):
    """The C layer rejected an argument (MW_STATUS_INVALID_ARGUMENT)."""


class UnsupportedError(MagmaWinoError, ValueError):
    """A valid request this build cannot run, e.g. an F(m, r) not compiled (MW_STATUS_UNSUPPORTED)."""


class LaunchError(MagmaWinoError):
    """A kernel launch failed (MW_STATUS_LAUNCH_FAILED)."""


class CudaError(MagmaWinoError):
    """The CUDA runtime reported an error (MW_STATUS_CUDA_ERROR)."""


class EmulatorError(LaunchError):
    """The CPU emulator found a fault in a kernel: barrier divergence, bad shuffle mask,
    shared-memory overflow, deadlock or an invalid launch configuration."""


class BackendUnavailableError(MagmaWinoError):
    """The requested backend cannot run here (no GPU, CuPy missing, extension not built)."""
