# cython: language_level=3
"""The kernels of magma_wino on the GPU.

Pointers are device pointers (CuPy ``arr.data.ptr``), ``stream`` a cudaStream_t handle
(CuPy's ``cupy.cuda.get_current_stream().ptr``).  cudart is linked statically, so this module
imports on machines without a driver; :func:`runtime_info` then reports no device.
"""
BACKEND = "cuda"

include "_api.pxi"

cdef extern from "cuda_runtime_api.h" nogil:
    ctypedef int cudaError_t
    cudaError_t cudaRuntimeGetVersion(int* version)
    cudaError_t cudaDriverGetVersion(int* version)
    cudaError_t cudaGetDeviceCount(int* count)
    const char* cudaGetErrorString(cudaError_t error)


def runtime_info():
    """CUDA runtime / driver versions and the device count (0 when no driver or GPU)."""
    cdef int runtime = 0, driver = 0, count = 0
    cdef cudaError_t err
    cudaRuntimeGetVersion(&runtime)
    cudaDriverGetVersion(&driver)
    err = cudaGetDeviceCount(&count)
    return {
        "runtime_version": runtime,
        "driver_version": driver,
        "device_count": count if err == 0 else 0,
        "device_error": "" if err == 0 else cudaGetErrorString(err).decode(),
    }
