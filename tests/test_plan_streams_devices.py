"""The GPU-path bookkeeping of plans, on the CPU: which GPU a plan lives on, which builds run
on which GPU, when the cuda backend counts as usable, and the stream ordering of calls.

The stream logic is driven through a stand-in for ``cupy.cuda`` (streams, events, devices
that record what was asked of them), so that the ordering rules are checked on every CI run;
``tests/test_gpu.py`` runs the same situations on a real GPU.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from magma_wino import WinogradConv2d, _backend
from magma_wino.errors import BackendUnavailableError
from magma_wino.layer import same_stream
from magma_wino.sparse import BatchedCSR

# --------------------------------------------------------------------------- architectures


@pytest.mark.parametrize(
    "arch, capability, runs",
    [
        ("80-real;90-real;90-virtual", (8, 0), True),
        ("80-real;90-real;90-virtual", (8, 6), True),  # sm_80 cubins run on 8.6 and 8.9
        ("80-real;90-real;90-virtual", (8, 9), True),
        ("80-real;90-real;90-virtual", (9, 0), True),
        ("80-real;90-real;90-virtual", (10, 0), True),  # the PTX of compute_90 is JIT-compiled
        ("80-real;90-real;90-virtual", (12, 0), True),
        ("80-real;90-real;90-virtual", (7, 5), False),  # older than every entry
        ("80-real,90-real", (10, 0), False),  # no PTX: nothing runs on a newer major
        ("86-real", (8, 0), False),  # a cubin never runs on a lower minor
        ("90a-real", (9, 0), True),
        ("90a-real", (10, 0), False),  # arch-specific code runs on exactly its capability
        ("90a-virtual", (10, 0), False),
        ("80", (9, 0), True),  # a bare number is real code + PTX, as in CMake
        ("sm_80", (8, 6), True),
    ],
)
def test_build_runs_on_follows_cuda_binary_compatibility(arch, capability, runs):
    assert _backend.build_runs_on(arch, capability) is runs


def test_parse_architectures_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match=r"^arch: cannot parse CUDA architecture 'ninety'"):
        _backend.parse_architectures("80-real;ninety")


def test_the_built_architectures_parse():
    ext = _backend.extension("cuda", required=False)
    if ext is None:
        pytest.skip("the CUDA extension was not built (no nvcc at install time)")
    parsed = _backend.parse_architectures(ext.build_info()["arch"])
    assert parsed and all(major >= 8 for major, *_ in parsed)


# --------------------------------------------------------------------------- availability


@pytest.fixture
def cupy_and_extension():
    """CuPy and the CUDA extension, with the cached availability cleared around the test."""
    cp = _backend.cupy_module()
    ext = _backend.extension("cuda", required=False)
    if cp is None or ext is None:
        pytest.skip("needs CuPy and the CUDA extension (built when nvcc is present)")
    _backend.cuda_unavailable_reason.cache_clear()
    yield cp, ext
    _backend.cuda_unavailable_reason.cache_clear()


def test_cuda_is_unavailable_when_the_extension_runtime_sees_no_gpu(monkeypatch, cupy_and_extension):
    """CuPy saying yes is not enough: the extension's own (static) runtime must see a GPU."""
    cp, ext = cupy_and_extension
    monkeypatch.setattr(cp, "is_available", lambda: True)
    monkeypatch.setattr(ext, "runtime_info", lambda: {"device_count": 0, "device_error": "driver too old"})
    reason = _backend.cuda_unavailable_reason()
    assert reason is not None and "extension's runtime sees no GPU (driver too old)" in reason
    assert not _backend.cuda_available()
    with pytest.raises(BackendUnavailableError, match=r"^backend='cuda': no usable CUDA GPU \(the CUDA ext"):
        _backend.Engine("cuda")


def test_cuda_is_unavailable_when_cupy_sees_no_gpu(monkeypatch, cupy_and_extension):
    cp, ext = cupy_and_extension
    monkeypatch.setattr(cp, "is_available", lambda: False)
    monkeypatch.setattr(ext, "runtime_info", lambda: {"device_count": 1, "device_error": ""})
    assert "cupy.is_available() is False" in _backend.cuda_unavailable_reason()


# --------------------------------------------------------------------------- streams


def test_the_per_thread_default_stream_is_a_different_stream_in_each_thread():
    assert same_stream(2, 1, 2, 1)
    assert not same_stream(2, 1, 2, 7)  # cudaStreamPerThread: one handle, a stream per thread
    assert same_stream(0, 1, 0, 7)  # the legacy default stream is shared by all threads
    assert same_stream(0x7F00, 1, 0x7F00, 7)  # an explicit stream is the same in any thread
    assert not same_stream(0x7F00, 1, 0x7F10, 1)


class _FakeEvent:
    def __init__(self, disable_timing=True):
        self.stream = None
        self.done = False

    def record(self, stream):
        self.stream = stream
        stream.recorded.append(self)


class _FakeStream:
    def __init__(self, ptr):
        self.ptr = ptr
        self.recorded: list[_FakeEvent] = []
        self.waited: list[_FakeEvent] = []

    def wait_event(self, event):
        self.waited.append(event)


class _FakeCuda:
    """What plans use of ``cupy.cuda``: Device scopes, the current stream (per host thread),
    events."""

    Event = _FakeEvent

    def __init__(self, default):
        self._local = threading.local()
        self.default = default
        self.devices: list[int] = []

    def get_current_stream(self):
        return getattr(self._local, "stream", self.default)

    @contextlib.contextmanager
    def using(self, stream):
        old = self.get_current_stream()
        self._local.stream = stream
        try:
            yield
        finally:
            self._local.stream = old

    @contextlib.contextmanager
    def Device(self, device=None):  # noqa: N802 - mirrors cupy.cuda.Device
        self.devices.append(device)
        yield


class _FakeXp:
    def __init__(self, cuda):
        self.cuda = cuda


class _FakeEngine:
    backend = "cuda"

    def __init__(self, cuda, device):
        self.xp = _FakeXp(cuda)
        self.device = device

    def scope(self):
        return self.xp.cuda.Device(self.device)


def _plan_on_fake_gpu(home, device=3):
    cuda = _FakeCuda(home)
    plan = WinogradConv2d(np.ones((2, 2, 3, 3), np.float32), m=2, backend="numpy")
    plan._engine, plan._device = _FakeEngine(cuda, device), device
    plan._mark_ready()
    return plan, cuda


def test_every_call_waits_for_the_plan_to_be_ready_even_on_its_home_stream():
    home = _FakeStream(0x100)
    plan, cuda = _plan_on_fake_gpu(home)
    assert home.recorded == [plan._ready]
    with plan._launch_scope():
        pass
    assert home.waited == [plan._ready]
    assert cuda.devices[-1] == 3  # launches run on the plan's GPU
    assert plan._pending == []  # a home-stream call needs no event


def test_dropping_a_plan_waits_for_every_call_on_other_streams():
    """Calls on A, then B, then drop: the home stream must wait for both (not only B)."""
    home, a, b = _FakeStream(0x100), _FakeStream(0x200), _FakeStream(0x300)
    plan, cuda = _plan_on_fake_gpu(home)
    for s in (a, b):
        with cuda.using(s), plan._launch_scope():
            pass
        assert s.waited == [plan._ready]
    assert len(a.recorded) == 1 and len(b.recorded) == 1
    plan.__del__()
    assert home.waited == [a.recorded[0], b.recorded[0]]


def test_completed_other_stream_events_are_not_kept():
    home, a = _FakeStream(0x100), _FakeStream(0x200)
    plan, cuda = _plan_on_fake_gpu(home)
    for _ in range(5):
        with cuda.using(a), plan._launch_scope():
            pass
        a.recorded[-1].done = True
    assert len(plan._pending) == 1  # the finished ones were dropped when the next came


def test_a_call_from_another_thread_on_the_per_thread_default_stream_is_ordered():
    """cudaStreamPerThread has the same handle in every thread but is a different stream."""
    home = _FakeStream(2)
    plan, cuda = _plan_on_fake_gpu(home)
    other = _FakeStream(2)  # the other thread's per-thread default stream: same ptr

    def call():
        with cuda.using(other), plan._launch_scope():
            pass

    t = threading.Thread(target=call)
    t.start()
    t.join()
    assert other.waited == [plan._ready]
    assert plan._pending == other.recorded and len(other.recorded) == 1
    plan.__del__()
    assert other.recorded[0] in home.waited


def test_foreign_inputs_and_borrowed_views_are_kept_until_the_call_is_done():
    home = _FakeStream(0x100)
    plan, cuda = _plan_on_fake_gpu(home)
    plan._borrowed = (object(),)
    before = len(_backend._in_flight)
    x = object()
    with plan._launch_scope((x,)):
        pass
    event, held = _backend._in_flight[-1]
    assert event is home.recorded[-1] and x in held and plan._borrowed[0] in held
    assert len(_backend._in_flight) == before + 1


def test_a_call_that_fails_still_records_its_event():
    home, a = _FakeStream(0x100), _FakeStream(0x200)
    plan, cuda = _plan_on_fake_gpu(home)
    with pytest.raises(RuntimeError), cuda.using(a), plan._launch_scope():
        raise RuntimeError("a launch failed after others were queued")
    assert plan._pending == a.recorded and len(a.recorded) == 1


# --------------------------------------------------------------------------- inputs


def test_from_spatial_with_a_list_names_w_on_every_backend():
    """A list is not an array: a TypeError naming w (not CuPy's CUDARuntimeError)."""
    for backend in ("numpy", "emulator"):
        with pytest.raises(TypeError, match=r"^w must be"):
            WinogradConv2d.from_spatial([[[[1.0]]]], prune=0.5, backend=backend)


def test_from_winograd_with_a_list_names_u():
    with pytest.raises(TypeError, match=r"^U must be an array"):
        WinogradConv2d.from_winograd([[[1.0]]], 3, m=2, backend="numpy")


def test_to_dense_does_not_pass_an_array_as_repeats(monkeypatch):
    """CuPy < 14 refuses ``repeat`` with an array of counts; to_dense must not rely on it."""
    rng = np.random.default_rng(0)
    U = rng.standard_normal((4, 6, 5)) * (rng.random((4, 6, 5)) < 0.4)
    U[1, 2] = 0  # an empty row
    U[3] = 0  # an empty position
    csr = BatchedCSR.from_dense(U)
    real_repeat = np.repeat

    def repeat(a, repeats, *args, **kw):
        if np.ndim(repeats) > 0:
            raise TypeError("repeats with an array is not supported (CuPy < 14)")
        return real_repeat(a, repeats, *args, **kw)

    monkeypatch.setattr(np, "repeat", repeat)
    np.testing.assert_array_equal(csr.to_dense(), U)
