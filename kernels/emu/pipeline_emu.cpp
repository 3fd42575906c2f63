// Asynchronous copies (the runtime of kernels/emu/include/cuda_pipeline_primitives.h).
//
// Each CUDA thread (fiber) owns a PipelineState: the copies it has issued and not yet performed,
// each tagged with its group (the number of __pipeline_commit calls before its issue). A copy
// poisons its destination at issue and is performed late: at the __pipeline_wait_prior that
// covers its group, at the thread's exit, or (MW_EMU_ASYNC_COPY=random) at an earlier switch
// point — a barrier or a pipeline call of the same thread — chosen by a coin seeded by the
// setting's seed, the block index and the thread index (so results do not depend on the worker
// count). The source is read when the copy is performed (a GPU may read it at any time between
// issue and wait); under AddressSanitizer it is also touched at issue, so that an out-of-bounds
// source is reported with the issuing call on the stack.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "cuda_emu.h"
#include "fiber_context.h"
#include "include/cuda_pipeline_primitives.h"
#include "mw_emu_config.h"

namespace mw::emu {

struct PendingCopy {
  unsigned char* dst;
  const unsigned char* src;
  unsigned size;   // 4, 8 or 16
  unsigned zfill;  // trailing bytes written as zero instead of copied
  unsigned long long group;
};

struct PipelineState {
  std::vector<PendingCopy> pending;   // in issue order
  unsigned long long open_group = 0;  // groups committed so far = the id of the open group
  bool started = false;               // mode and coin drawn for the current block
  bool random = false;
  unsigned long long coin = 0;
};

namespace {

constexpr unsigned char kPoisonByte = 0xFF;  // as the poison of dynamic shared memory
constexpr size_t kMaxWaitPrior = 8;          // CUDA's header: wait_prior(N > 8) is wait_prior(8)

struct AsyncCopySettings {
  std::atomic<int> mode{MW_EMU_ASYNC_COPY_LATE};
  std::atomic<unsigned long long> seed{0};

  AsyncCopySettings() {
    if (const char* text = std::getenv("MW_EMU_ASYNC_COPY")) {
      const std::string_view value(text);
      if (value.starts_with("random")) {
        mode = MW_EMU_ASYNC_COPY_RANDOM;
        if (value.size() > 7 && value[6] == ':') seed = std::strtoull(text + 7, nullptr, 0);
      }
    }
  }
};

AsyncCopySettings& async_copy_settings() {
  static AsyncCopySettings* instance = new AsyncCopySettings();  // never destroyed
  return *instance;
}

unsigned long long next_coin(unsigned long long& state) {
  unsigned long long z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void perform(const PendingCopy& copy) {
  const unsigned copied = copy.size - copy.zfill;
  if (copied > 0) std::memcpy(copy.dst, copy.src, copied);
  if (copy.zfill > 0) std::memset(copy.dst + copied, 0, copy.zfill);
}

// The running thread's state, created on first use and started for the current block; nullptr
// outside a launch.
PipelineState* running_state() {
  PipelineState** slot = current_pipeline_slot();
  if (slot == nullptr) return nullptr;
  if (*slot == nullptr) *slot = new PipelineState();
  PipelineState& state = **slot;
  if (!state.started) {
    AsyncCopySettings& s = async_copy_settings();
    state.started = true;
    state.random = s.mode.load(std::memory_order_relaxed) == MW_EMU_ASYNC_COPY_RANDOM;
    state.coin = s.seed.load(std::memory_order_relaxed) ^ block_seed();
  }
  return &state;
}

// Performs the pending copies for which `done(copy)` holds, in issue order, and drops them.
template <typename Predicate>
void perform_if(PipelineState& state, Predicate done) {
  size_t kept = 0;
  for (size_t i = 0; i < state.pending.size(); ++i) {
    const PendingCopy copy = state.pending[i];
    if (done(copy)) {
      perform(copy);
    } else {
      state.pending[kept++] = copy;
    }
  }
  state.pending.resize(kept);
}

// Under the random option every pending copy completes here with probability 1/2.
void maybe_complete_early(PipelineState& state) {
  if (!state.random || state.pending.empty()) return;
  perform_if(state, [&state](const PendingCopy&) { return (next_coin(state.coin) & 1u) != 0; });
}

[[gnu::noinline]] void copy_failure(const std::source_location& where, const char* what,
                                    size_t size, size_t zfill, const void* dst, const void* src,
                                    cudaError_t status) {
  char message[512];
  std::snprintf(message, sizeof(message),
                "%s:%u: __pipeline_memcpy_async(dst %p, src %p, size_and_align %zu, zfill %zu): "
                "%s",
                where.file_name(), static_cast<unsigned>(where.line()), dst, src, size, zfill,
                what);
  fail_thread(message, status);
}

}  // namespace

void pipeline_memcpy_async(void* dst, const void* src, size_t size, size_t zfill,
                           const std::source_location& where) {
  if (size != 4 && size != 8 && size != 16) {
    copy_failure(where, "size_and_align must be 4, 8 or 16 bytes", size, zfill, dst, src,
                 cudaErrorLaunchFailure);
    return;
  }
  if (zfill > size) {
    copy_failure(where, "zfill exceeds size_and_align", size, zfill, dst, src,
                 cudaErrorLaunchFailure);
    return;
  }
  if (reinterpret_cast<uintptr_t>(dst) % size != 0) {
    copy_failure(where,
                 "misaligned address: the shared-memory destination is not a multiple of "
                 "size_and_align (a GPU faults)",
                 size, zfill, dst, src, cudaErrorMisalignedAddress);
    return;
  }
  if (reinterpret_cast<uintptr_t>(src) % size != 0) {
    copy_failure(where,
                 "misaligned address: the global source is not a multiple of size_and_align "
                 "(a GPU faults)",
                 size, zfill, dst, src, cudaErrorMisalignedAddress);
    return;
  }
  const PendingCopy copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src),
                         static_cast<unsigned>(size), static_cast<unsigned>(zfill), 0};
  PipelineState* state = running_state();
  if (state == nullptr) {  // host code (outside any launch): a plain copy
    perform(copy);
    return;
  }
#if MW_EMU_ASAN
  // Touch the source now, so that ASan reports an out-of-bounds source at the issuing call.
  unsigned char probe[16];
  if (copy.size > copy.zfill) std::memcpy(probe, copy.src, copy.size - copy.zfill);
  asm volatile("" : : "r"(probe) : "memory");
#endif
  maybe_complete_early(*state);
  std::memset(dst, kPoisonByte, size);  // in flight: the destination reads as poison
  state->pending.push_back(copy);
  state->pending.back().group = state->open_group;
}

void pipeline_commit() {
  PipelineState* state = running_state();
  if (state == nullptr) return;
  maybe_complete_early(*state);
  ++state->open_group;
}

void pipeline_wait_prior(size_t prior) {
  PipelineState* state = running_state();
  if (state == nullptr) return;
  const unsigned long long keep = std::min(prior, kMaxWaitPrior);
  // Committed groups are 0 .. open_group - 1; all but the newest `keep` must be complete.
  if (state->open_group > keep) {
    const unsigned long long limit = state->open_group - keep;
    perform_if(*state, [limit](const PendingCopy& copy) { return copy.group < limit; });
  }
  maybe_complete_early(*state);
}

void pipeline_reset(PipelineState* state) {
  state->pending.clear();
  state->open_group = 0;
  state->started = false;
}

void pipeline_switch_point(PipelineState* state) {
  if (state->started) maybe_complete_early(*state);
}

void pipeline_thread_exit(PipelineState* state) {
  // CUDA leaves copies never waited for unspecified; a GPU completes them eventually, and so
  // does the emulator (their destinations are shared memory other threads may still read).
  perform_if(*state, [](const PendingCopy&) { return true; });
}

void pipeline_destroy(PipelineState* state) { delete state; }

}  // namespace mw::emu

// ---------------------------------------------------------------------------------------------
// Settings (mw_emu_config.h).
extern "C" {

int mw_emu_set_async_copy(int mode, unsigned long long seed) {
  if (mode != MW_EMU_ASYNC_COPY_LATE && mode != MW_EMU_ASYNC_COPY_RANDOM) return 1;
  auto& s = mw::emu::async_copy_settings();
  s.mode.store(mode);
  s.seed.store(seed);
  return 0;
}

int mw_emu_get_async_copy(void) { return mw::emu::async_copy_settings().mode.load(); }

unsigned long long mw_emu_get_async_copy_seed(void) {
  return mw::emu::async_copy_settings().seed.load();
}

}  // extern "C"
