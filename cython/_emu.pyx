# cython: language_level=3
"""The kernels of magma_wino run on the CPU by the emulator (kernels/emu).

Pointers are host pointers (NumPy ``arr.ctypes.data``); launches are synchronous.
"""
BACKEND = "emulator"

include "_api.pxi"

cdef extern from "emu/mw_emu_config.h" nogil:
    int mw_emu_set_workers(int n)
    int mw_emu_get_workers()
    int mw_emu_set_order(int order, unsigned long long seed)
    int mw_emu_get_order()

_ORDERS = {"forward": 0, "reverse": 1, "shuffle": 2}


def set_workers(int n):
    """Worker threads that run blocks (0 = one per core)."""
    if mw_emu_set_workers(n) != 0:
        raise ValueError(f"workers must be >= 0, got {n}")


def get_workers():
    return mw_emu_get_workers()


def set_order(str order, unsigned long long seed=0):
    """Order in which a block's threads run between barriers: forward, reverse or shuffle."""
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
    if mw_emu_set_order(_ORDERS[order], seed) != 0:
        raise ValueError(f"order {order!r} rejected by the emulator")


def get_order():
    code = mw_emu_get_order()
    return {v: k for k, v in _ORDERS.items()}.get(code, str(code))
