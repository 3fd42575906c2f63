// The emulator's runtime: settings, the worker pool, the per-block fiber scheduler, barriers,
// warp-level rendezvous and the diagnostics they raise.
//
// Execution model. A launch hands out blocks (in linear order) to worker threads. A worker runs
// one block at a time: every CUDA thread of the block is a fiber on that worker, and the worker's
// own stack runs the scheduler, which resumes ready fibers in the configured order. A fiber runs
// until it finishes, waits at __syncthreads, or waits at a warp operation whose other lanes have
// not arrived. Nothing preempts a fiber, so all bookkeeping below is per worker and lock-free;
// only the launch-level state (next block, first error) is shared between workers.
//
// Diagnostics never abort: the fiber that detects a problem records it and switches to the
// scheduler for the last time; the scheduler abandons the block (its fibers are re-prepared
// from scratch for the next block, so their stacks are simply reused), and the launch stops
// handing out blocks. The caller gets cudaErrorLaunchFailure (cudaErrorMisalignedAddress for a
// misaligned vector access, as on a GPU) and the message.
#include "cuda_emu.h"

#include <sched.h>

#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fiber_context.h"
#include "mw_emu_config.h"

namespace mw::emu {
namespace {

// ---------------------------------------------------------------------------------------------
// Limits CUDA enforces at launch (sm_90).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockX = 1024, kMaxBlockY = 1024, kMaxBlockZ = 64;
constexpr unsigned long long kMaxGridX = 2147483647ull;
constexpr unsigned kMaxGridYZ = 65535;
constexpr size_t kMaxDynamicSharedBytes = 232448;  // 227 KiB: sm_90's per-block limit
// Launch-time limit without an opt-in (cudaFuncAttributeMaxDynamicSharedMemorySize), and the
// largest opt-in (cudaDevAttrMaxSharedMemoryPerBlockOptin of sm_90).
constexpr size_t kDefaultDynamicSharedBytes = 48 * 1024;
constexpr int kMaxSharedOptinBytes = 232448;

// The opt-ins of cudaFuncSetAttribute, per kernel.
std::mutex& optin_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_map<const void*, size_t>& optins() {
  static auto* map = new std::unordered_map<const void*, size_t>();
  return *map;
}

// Bytes after the dynamic shared buffer that must still hold kCanaryByte after each block.
constexpr size_t kCanaryBytes = 256;
constexpr unsigned char kCanaryByte = 0xCD;
// Unwritten shared memory reads as all-one bytes: NaN as float/double, -1 as integers.
constexpr unsigned char kPoisonByte = 0xFF;
constexpr unsigned long long kPoisonBits = ~0ull;

// ---------------------------------------------------------------------------------------------
// Settings.
struct Settings {
  std::mutex mutex;
  int workers = 0;  // 0 = cores
  int order = MW_EMU_ORDER_FORWARD;
  unsigned long long seed = 0;
  int context_switch = MW_EMU_HAVE_ASM_SWITCH ? MW_EMU_SWITCH_ASM : MW_EMU_SWITCH_UCONTEXT;
  int stack_kb = MW_EMU_ASAN ? 512 : 64;
  bool fragment_permute = false;  // WMMA element-to-lane mapping permuted (<mma.h>)
  unsigned long long fragment_seed = 0;
  int sm_count = kEmuDefaultSmCount;  // cudaDevAttrMultiProcessorCount

  Settings() {
    if (const char* text = std::getenv("MW_EMU_WORKERS")) {
      const int n = std::atoi(text);
      if (n >= 0 && n <= 1024) workers = n;
    }
    if (const char* text = std::getenv("MW_EMU_ORDER")) {
      const std::string_view value(text);
      if (value == "forward") order = MW_EMU_ORDER_FORWARD;
      if (value == "reverse") order = MW_EMU_ORDER_REVERSE;
      if (value.starts_with("shuffle")) {
        order = MW_EMU_ORDER_SHUFFLE;
        if (value.size() > 8 && value[7] == ':') seed = std::strtoull(text + 8, nullptr, 0);
      }
    }
    if (const char* text = std::getenv("MW_EMU_CONTEXT_SWITCH")) {
      const std::string_view value(text);
      if (value == "ucontext") context_switch = MW_EMU_SWITCH_UCONTEXT;
      if (value == "asm" && MW_EMU_HAVE_ASM_SWITCH) context_switch = MW_EMU_SWITCH_ASM;
    }
    if (const char* text = std::getenv("MW_EMU_WMMA_PERMUTE")) {
      const std::string_view value(text);
      if (!value.empty() && value != "off") {
        fragment_permute = true;
        fragment_seed = std::strtoull(text, nullptr, 0);
      }
    }
    if (const char* text = std::getenv("MW_EMU_SM_COUNT")) {
      const int n = std::atoi(text);
      if (n >= 1 && n <= 4096) sm_count = n;
    }
    if (const char* text = std::getenv("MW_EMU_STACK_KB")) {
      const int kib = std::atoi(text);
      if (kib >= 16 && kib <= 65536) stack_kb = kib;
    }
  }
};

Settings& settings() {
  static Settings* instance = new Settings();  // never destroyed: workers may outlive statics
  return *instance;
}

int core_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// ---------------------------------------------------------------------------------------------
// Messages.
std::string format(const char* pattern, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* pattern, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, pattern);
  std::vsnprintf(buffer, sizeof(buffer), pattern, args);
  va_end(args);
  return buffer;
}

std::string where_text(const std::source_location& where) {
  return format("%s:%u", where.file_name(), static_cast<unsigned>(where.line()));
}

std::string triple(uint3 v) { return format("(%u,%u,%u)", v.x, v.y, v.z); }

bool same_site(const std::source_location& a, const std::source_location& b) {
  // Usually the very same string literal: compare pointers before characters.
  return a.line() == b.line() &&
         (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

thread_local cudaError_t tls_last_error = cudaSuccess;
thread_local std::string tls_last_message;

cudaError_t finish_launch(cudaError_t status, std::string message) {
  tls_last_error = status;
  tls_last_message = std::move(message);
  return status;
}

// ---------------------------------------------------------------------------------------------
// Fibers and blocks.
enum class FiberState : unsigned char { kReady, kAtBarrier, kAtWarpOp, kDone };

struct Fiber {
  ExecutionContext context;
  FiberStack stack;
  void* asan_fake_stack = nullptr;
  FiberState state = FiberState::kReady;
  uint3 thread_idx{};
  unsigned linear = 0;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
  std::source_location barrier_site;
  // The warp-operation slot: what this lane deposited and the result computed for it.
  bool warp_arrived = false;
  WarpOpRequest warp_request{};
  unsigned long long warp_result = 0;
  // Asynchronous copies in flight (pipeline_emu.cpp), created on first use.
  PipelineState* pipeline = nullptr;

  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber() {
    pipeline_destroy(pipeline);
    free_fiber_stack(stack);
  }
};

struct LaunchState;

struct BlockRun {
  const KernelCall* call = nullptr;
  uint3 block_idx{};
  unsigned long long block_linear = 0;
  unsigned num_threads = 0;
  unsigned at_barrier = 0;
  unsigned done = 0;
  const Fiber* first_done = nullptr;
  const Fiber* first_at_barrier = nullptr;
  bool failed = false;
  std::string error;
  cudaError_t status = cudaErrorLaunchFailure;  // what the launch returns when failed
};

// Everything one worker thread owns. Fibers of a block only ever run on their worker.
struct Worker {
  std::vector<std::unique_ptr<Fiber>> fibers;
  size_t fiber_stack_bytes = 0;
  std::vector<unsigned> order;
  ExecutionContext scheduler_context;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  unsigned char* dynamic_shared = nullptr;
  size_t dynamic_shared_capacity = 0;
  size_t dynamic_shared_bytes = 0;
  SwitchMethod method = SwitchMethod::kUcontext;
  BlockRun* block = nullptr;
  Fiber* current = nullptr;
  bool fragment_permute = false;  // the running launch's WMMA mapping setting
  unsigned long long fragment_seed = 0;

  ~Worker() { ::operator delete[](dynamic_shared, std::align_val_t{64}); }
};

// The worker state of this thread: owned by a thread_local unique_ptr (destroyed at thread
// exit), reached on hot paths through a plain pointer (no TLS wrapper or guard).
thread_local std::unique_ptr<Worker> tls_worker_owner;
thread_local Worker* tls_worker = nullptr;

Worker& this_worker() {
  if (tls_worker == nullptr) {
    tls_worker_owner = std::make_unique<Worker>();
    tls_worker = tls_worker_owner.get();
  }
  return *tls_worker;
}

[[noreturn]] void fiber_entry(void* argument);

void resume(Worker& worker, Fiber& fiber) {
  worker.current = &fiber;
  threadIdx = fiber.thread_idx;
  sanitizer_start_switch(&worker.scheduler_fake_stack, fiber.stack.lowest, fiber.stack.size);
  switch_context(worker.scheduler_context, fiber.context, worker.method);
  sanitizer_finish_switch(worker.scheduler_fake_stack, nullptr, nullptr);
  worker.current = nullptr;
}

// Switches from the running fiber back to the scheduler; returns when the scheduler resumes it.
void yield_to_scheduler(Worker& worker, Fiber& fiber, bool final_switch) {
  sanitizer_start_switch(final_switch ? nullptr : &fiber.asan_fake_stack,
                         worker.scheduler_stack_bottom, worker.scheduler_stack_size);
  switch_context(fiber.context, worker.scheduler_context, worker.method);
  sanitizer_finish_switch(fiber.asan_fake_stack, &worker.scheduler_stack_bottom,
                          &worker.scheduler_stack_size);
}

// Records a diagnostic for the running fiber's block (the first one wins). Call it as its own
// statement, then abandon_fiber(): a fiber that is abandoned never runs destructors, so no
// std::string may be alive in its frames at that point.
void record_failure(Worker& worker, const std::string& what,
                    cudaError_t status = cudaErrorLaunchFailure) {
  BlockRun& block = *worker.block;
  if (block.failed) return;
  block.failed = true;
  block.status = status;
  block.error = what + format(" [block %s thread %s]", triple(block.block_idx).c_str(),
                              triple(worker.current->thread_idx).c_str());
}

// Leaves the running fiber for good; the scheduler abandons the block.
[[noreturn]] void abandon_fiber(Worker& worker) {
  yield_to_scheduler(worker, *worker.current, /*final_switch=*/true);
  std::fputs("mw emulator: an abandoned fiber was resumed\n", stderr);
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// Warp operations: a rendezvous of the lanes named in the mask. Each lane deposits its request
// in its own slot; the last lane to arrive checks that all agree, computes every lane's result
// into the lanes' slots, and releases them. A released lane reads only its own result slot, so
// a lane that runs ahead into the next warp operation cannot disturb data another lane needs.
Fiber& lane_fiber(Worker& worker, unsigned warp_base, unsigned lane) {
  return *worker.fibers[warp_base + lane];
}

const char* state_text(const Fiber& fiber) {
  switch (fiber.state) {
    case FiberState::kReady:
      return "is running";
    case FiberState::kAtBarrier:
      return "waits at __syncthreads()";
    case FiberState::kAtWarpOp:
      return "waits at a warp operation";
    case FiberState::kDone:
      return "has exited";
  }
  return "?";
}

unsigned long long lane_result(Worker& worker, unsigned warp_base, unsigned lane) {
  const WarpOpRequest& request = lane_fiber(worker, warp_base, lane).warp_request;
  const unsigned mask = request.mask;
  const unsigned width = static_cast<unsigned>(request.width);
  const unsigned segment = lane & ~(width - 1);
  unsigned source = lane;
  switch (request.kind) {
    case WarpOpKind::kSyncWarp:
    case WarpOpKind::kCollective:
      return 0;
    case WarpOpKind::kBallot:
    case WarpOpKind::kAny:
    case WarpOpKind::kAll: {
      unsigned ballot = 0;
      for (unsigned other = 0; other < 32; ++other) {
        if ((mask >> other & 1u) && lane_fiber(worker, warp_base, other).warp_request.value != 0) {
          ballot |= 1u << other;
        }
      }
      if (request.kind == WarpOpKind::kBallot) return ballot;
      if (request.kind == WarpOpKind::kAny) return ballot != 0;
      return ballot == mask;
    }
    case WarpOpKind::kShflIdx:
      source = segment + (static_cast<unsigned>(request.lane_param) & (width - 1));
      break;
    case WarpOpKind::kShflUp: {
      const unsigned delta = static_cast<unsigned>(request.lane_param);
      source = (lane - segment) >= delta ? lane - delta : lane;
      break;
    }
    case WarpOpKind::kShflDown: {
      const unsigned delta = static_cast<unsigned>(request.lane_param);
      source = (lane - segment) + delta < width ? lane + delta : lane;
      break;
    }
    case WarpOpKind::kShflXor: {
      const unsigned partner = lane ^ static_cast<unsigned>(request.lane_param);
      // CUDA: lanes may read from earlier width-groups; a later group returns the own value.
      source = partner < segment + width ? partner : lane;
      break;
    }
  }
  // Reading a lane that does not take part gives an undefined value on the GPU: poison it.
  if (!(mask >> source & 1u)) return kPoisonBits;
  return lane_fiber(worker, warp_base, source).warp_request.value;
}

// A warp-collective call (WarpOpKind::kCollective) of the running lane against one that already
// waits: records the first difference of call site or argument and returns true, or false.
bool record_collective_mismatch(Worker& worker, unsigned lane, const WarpOpRequest& mine,
                                unsigned other, const WarpOpRequest& theirs) {
  const unsigned warp = worker.current->linear / 32;
  if (!same_site(mine.where, theirs.where) || std::strcmp(mine.name, theirs.name) != 0) {
    record_failure(worker,
                   format("%s: %s: warp-collective call diverges in warp %u: lane %u calls it "
                          "here while lane %u waits in %s at %s; every lane of the warp must "
                          "reach the same call",
                          where_text(mine.where).c_str(), mine.name, warp, lane, other, theirs.name,
                          where_text(theirs.where).c_str()));
    return true;
  }
  for (int i = 0; i < 3; ++i) {
    const char* argument = mine.collective->arg_names[i];
    const unsigned long long a = mine.collective->args[i], b = theirs.collective->args[i];
    if (argument == nullptr || a == b) continue;
    record_failure(
        worker,
        format("%s: %s: lanes of warp %u disagree on %s: lane %u passes %#llx, lane "
               "%u passes %#llx; every lane of the warp must pass the same value",
               where_text(mine.where).c_str(), mine.name, warp, argument, lane, a, other, b));
    return true;
  }
  return false;
}

// Where (and why) the fiber `waiter` cannot complete its warp operation; "" when it could.
std::string absent_lanes_text(Worker& worker, unsigned warp_base, unsigned mask) {
  std::string text;
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(mask >> lane & 1u)) continue;
    const Fiber& other = lane_fiber(worker, warp_base, lane);
    if (other.warp_arrived) continue;
    text += format("%slane %u (thread %s) %s", text.empty() ? "" : "; ", lane,
                   triple(other.thread_idx).c_str(), state_text(other));
    if (other.state == FiberState::kAtBarrier) text += " " + where_text(other.barrier_site);
    if (other.state == FiberState::kAtWarpOp) text += " " + where_text(other.warp_request.where);
    if (text.size() > 600) break;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Block scheduling.
[[noreturn]] void fiber_entry(void* argument) {
  Worker& worker = *tls_worker;
  Fiber& fiber = *static_cast<Fiber*>(argument);
  // First arrival on this stack: learn the scheduler's stack for later switches back.
  sanitizer_finish_switch(nullptr, &worker.scheduler_stack_bottom, &worker.scheduler_stack_size);
  BlockRun& block = *worker.block;
  block.call->invoke(block.call->closure);
  if (fiber.pipeline != nullptr) pipeline_thread_exit(fiber.pipeline);

  fiber.state = FiberState::kDone;
  ++block.done;
  if (block.first_done == nullptr) block.first_done = &fiber;
  if (block.at_barrier > 0) {
    const Fiber& waiter = *block.first_at_barrier;
    record_failure(
        worker, format("%s: barrier divergence: thread %s exited while %u thread(s) of its block "
                       "wait at __syncthreads() there (e.g. thread %s)",
                       where_text(waiter.barrier_site).c_str(), triple(fiber.thread_idx).c_str(),
                       block.at_barrier, triple(waiter.thread_idx).c_str()));
    abandon_fiber(worker);
  }
  // Lanes of this warp waiting at a warp operation that names this lane can never complete.
  const unsigned warp_base = fiber.linear & ~31u;
  const unsigned lane = fiber.linear & 31u;
  const unsigned warp_lanes = std::min(32u, block.num_threads - warp_base);
  for (unsigned other = 0; other < warp_lanes; ++other) {
    const Fiber& waiter = lane_fiber(worker, warp_base, other);
    if (waiter.warp_arrived && (waiter.warp_request.mask >> lane & 1u)) {
      record_failure(
          worker, format("%s: %s: thread %s (lane %u) exited while lane %u waits for it "
                         "(mask 0x%08x)%s",
                         where_text(waiter.warp_request.where).c_str(), waiter.warp_request.name,
                         triple(fiber.thread_idx).c_str(), lane, other, waiter.warp_request.mask,
                         waiter.warp_request.kind == WarpOpKind::kCollective
                             ? "; a warp-collective call must be reached by every lane of the warp"
                             : ""));
      abandon_fiber(worker);
    }
  }
  yield_to_scheduler(worker, fiber, /*final_switch=*/true);
  std::fputs("mw emulator: a finished fiber was resumed\n", stderr);
  std::abort();
}

unsigned long long splitmix64(unsigned long long& state) {
  unsigned long long z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct LaunchState {
  const KernelCall* call = nullptr;
  dim3 grid, block;
  size_t shared_bytes = 0;
  unsigned long long total_blocks = 0;
  int order = MW_EMU_ORDER_FORWARD;
  unsigned long long seed = 0;
  SwitchMethod method = SwitchMethod::kUcontext;
  size_t stack_bytes = 0;
  bool fragment_permute = false;
  unsigned long long fragment_seed = 0;
  std::atomic<unsigned long long> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  unsigned long long error_block = ~0ull;  // the lowest failing block reports
  std::string error;
  cudaError_t error_status = cudaSuccess;

  void report(unsigned long long block_linear, std::string message, cudaError_t status) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (block_linear < error_block) {
      error_block = block_linear;
      error = std::move(message);
      error_status = status;
    }
    failed.store(true, std::memory_order_relaxed);
  }
};

void prepare_worker(Worker& worker, const LaunchState& launch) {
  const unsigned threads = launch.block.x * launch.block.y * launch.block.z;
  if (worker.fiber_stack_bytes != launch.stack_bytes) {
    worker.fibers.clear();
    worker.fiber_stack_bytes = launch.stack_bytes;
  }
  while (worker.fibers.size() < threads) {
    auto fiber = std::make_unique<Fiber>();
    fiber->stack = allocate_fiber_stack(launch.stack_bytes);
    worker.fibers.push_back(std::move(fiber));
  }
  const size_t needed = launch.shared_bytes + kCanaryBytes;
  if (worker.dynamic_shared_capacity < needed) {
    ::operator delete[](worker.dynamic_shared, std::align_val_t{64});
    worker.dynamic_shared =
        static_cast<unsigned char*>(::operator new[](needed, std::align_val_t{64}));
    worker.dynamic_shared_capacity = needed;
  }
  worker.dynamic_shared_bytes = launch.shared_bytes;
  worker.method = launch.method;
  worker.fragment_permute = launch.fragment_permute;
  worker.fragment_seed = launch.fragment_seed;
  worker.order.resize(threads);
}

void set_block_order(Worker& worker, const LaunchState& launch, unsigned long long block_linear) {
  const unsigned n = static_cast<unsigned>(worker.order.size());
  for (unsigned i = 0; i < n; ++i) {
    worker.order[i] = launch.order == MW_EMU_ORDER_REVERSE ? n - 1 - i : i;
  }
  if (launch.order == MW_EMU_ORDER_SHUFFLE) {
    // Seeded by the block index, not by the worker, so results do not depend on worker count.
    unsigned long long state = launch.seed ^ (block_linear * 0xd1b54a32d192ed03ull);
    for (unsigned i = n; i > 1; --i) {
      std::swap(worker.order[i - 1], worker.order[splitmix64(state) % i]);
    }
  }
}

// Runs one block to completion; returns false (with block.error set) on a diagnostic.
bool run_block(Worker& worker, const LaunchState& launch, unsigned long long block_linear) {
  const dim3 grid = launch.grid, dims = launch.block;
  BlockRun block;
  block.call = launch.call;
  block.block_linear = block_linear;
  block.block_idx = {static_cast<unsigned>(block_linear % grid.x),
                     static_cast<unsigned>(block_linear / grid.x % grid.y),
                     static_cast<unsigned>(block_linear / grid.x / grid.y)};
  block.num_threads = dims.x * dims.y * dims.z;
  worker.block = &block;
  blockIdx = block.block_idx;
  blockDim = dims;
  gridDim = grid;

  std::memset(worker.dynamic_shared, kPoisonByte, launch.shared_bytes);
  std::memset(worker.dynamic_shared + launch.shared_bytes, kCanaryByte, kCanaryBytes);

  for (unsigned t = 0; t < block.num_threads; ++t) {
    Fiber& fiber = *worker.fibers[t];
    fiber.state = FiberState::kReady;
    fiber.linear = t;
    fiber.thread_idx = {t % dims.x, t / dims.x % dims.y, t / dims.x / dims.y};
    fiber.warp_arrived = false;
    fiber.asan_fake_stack = nullptr;
    if (fiber.pipeline != nullptr) pipeline_reset(fiber.pipeline);
    sanitizer_forget_stack(fiber.stack);
    prepare_context(fiber.context, fiber.stack, &fiber_entry, &fiber, worker.method);
  }
  set_block_order(worker, launch, block_linear);

  while (!block.failed && block.done < block.num_threads) {
    bool resumed_any = false;
    for (unsigned index : worker.order) {
      Fiber& fiber = *worker.fibers[index];
      if (fiber.state != FiberState::kReady) continue;
      resume(worker, fiber);
      resumed_any = true;
      if (block.failed) break;
    }
    if (block.failed || block.done == block.num_threads) break;
    if (block.at_barrier == block.num_threads) {
      // Everyone arrived at the same __syncthreads (checked on arrival): release them all.
      for (unsigned t = 0; t < block.num_threads; ++t) {
        worker.fibers[t]->state = FiberState::kReady;
      }
      block.at_barrier = 0;
      block.first_at_barrier = nullptr;
      continue;
    }
    if (resumed_any) continue;
    // No fiber can run and the barrier is incomplete: some lane waits at a warp operation for
    // lanes that wait elsewhere.
    block.failed = true;
    std::string detail = "deadlock: no thread of the block can proceed";
    for (unsigned t = 0; t < block.num_threads; ++t) {
      const Fiber& fiber = *worker.fibers[t];
      if (fiber.state != FiberState::kAtWarpOp) continue;
      detail =
          format("%s: deadlock: %s in thread %s waits for %s",
                 where_text(fiber.warp_request.where).c_str(), fiber.warp_request.name,
                 triple(fiber.thread_idx).c_str(),
                 absent_lanes_text(worker, fiber.linear & ~31u, fiber.warp_request.mask).c_str());
      break;
    }
    block.error = detail + format(" [block %s]", triple(block.block_idx).c_str());
  }

  if (!block.failed) {
    const unsigned char* canary = worker.dynamic_shared + launch.shared_bytes;
    for (size_t i = 0; i < kCanaryBytes; ++i) {
      if (canary[i] == kCanaryByte) continue;
      size_t last = i;
      for (size_t j = i; j < kCanaryBytes; ++j) {
        if (canary[j] != kCanaryByte) last = j;
      }
      block.failed = true;
      block.error = format(
          "dynamic shared memory overflow: bytes [%zu, %zu] past the end of the %zu-byte "
          "dynamic shared memory were written [block %s]",
          i, last, launch.shared_bytes, triple(block.block_idx).c_str());
      break;
    }
  }
  worker.block = nullptr;
  if (block.failed) {
    const_cast<LaunchState&>(launch).report(block_linear, "mw emulator: " + block.error,
                                            block.status);
  }
  return !block.failed;
}

void run_blocks(LaunchState& launch) {
  Worker& worker = this_worker();
  try {
    prepare_worker(worker, launch);
  } catch (const std::bad_alloc&) {
    launch.report(0, "mw emulator: out of memory for fiber stacks or shared memory",
                  cudaErrorMemoryAllocation);
    return;
  }
  while (!launch.failed.load(std::memory_order_relaxed)) {
    const unsigned long long block = launch.next_block.fetch_add(1, std::memory_order_relaxed);
    if (block >= launch.total_blocks) break;
    if (!run_block(worker, launch, block)) break;
  }
}

// ---------------------------------------------------------------------------------------------
// Worker pool: the launching thread is worker 0; helpers are persistent threads (their fiber
// stacks are reused across launches). Launches from several host threads are serialized.
class WorkerPool {
 public:
  void run(int workers, const std::function<void()>& job) {
    const int helpers = workers - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < helpers) {
        const int id = static_cast<int>(threads_.size());
        threads_.emplace_back([this, id] { helper_loop(id); });
      }
      job_ = &job;
      helpers_wanted_ = helpers;
      helpers_running_ = helpers;
      ++generation_;
    }
    if (helpers > 0) start_.notify_all();
    job();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return helpers_running_ == 0; });
    job_ = nullptr;
  }

  std::mutex& launch_mutex() { return launch_mutex_; }

 private:
  void helper_loop(int id) {
    unsigned long long seen = 0;
    for (;;) {
      const std::function<void()>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= helpers_wanted_) continue;
        job = job_;
      }
      (*job)();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--helpers_running_ == 0) done_.notify_all();
    }
  }

  std::mutex launch_mutex_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> threads_;
  const std::function<void()>* job_ = nullptr;
  int helpers_wanted_ = 0;
  int helpers_running_ = 0;
  unsigned long long generation_ = 0;
};

WorkerPool& worker_pool() {
  // Never destroyed: helper threads block forever and the process exit reclaims them.
  static WorkerPool* pool = new WorkerPool();
  return *pool;
}

std::string check_configuration(const void* func, dim3 grid, dim3 block, size_t shared_bytes) {
  const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0) {
    return format("zero dimension in grid (%u,%u,%u) or block (%u,%u,%u)", grid.x, grid.y, grid.z,
                  block.x, block.y, block.z);
  }
  if (threads > kMaxThreadsPerBlock) {
    return format("block (%u,%u,%u) has %llu threads, more than %u", block.x, block.y, block.z,
                  threads, kMaxThreadsPerBlock);
  }
  if (block.x > kMaxBlockX || block.y > kMaxBlockY || block.z > kMaxBlockZ) {
    return format("block (%u,%u,%u) exceeds the limits (%u,%u,%u)", block.x, block.y, block.z,
                  kMaxBlockX, kMaxBlockY, kMaxBlockZ);
  }
  if (grid.x > kMaxGridX || grid.y > kMaxGridYZ || grid.z > kMaxGridYZ) {
    return format("grid (%u,%u,%u) exceeds the limits (%llu,%u,%u)", grid.x, grid.y, grid.z,
                  kMaxGridX, kMaxGridYZ, kMaxGridYZ);
  }
  if (shared_bytes > kMaxDynamicSharedBytes) {
    return format("%zu bytes of dynamic shared memory requested, more than %zu (sm_90's limit)",
                  shared_bytes, kMaxDynamicSharedBytes);
  }
  if (shared_bytes > kDefaultDynamicSharedBytes) {
    size_t optin = 0;
    {
      std::lock_guard<std::mutex> lock(optin_mutex());
      if (auto it = optins().find(func); it != optins().end()) optin = it->second;
    }
    if (shared_bytes > optin)
      return format(
          "%zu bytes of dynamic shared memory requested, more than 48 KiB, but the "
          "kernel's cudaFuncAttributeMaxDynamicSharedMemorySize is %zu (call "
          "cudaFuncSetAttribute before the launch)",
          shared_bytes, optin);
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points used by the kernels (declared in cuda_emu.h).
cudaError_t func_set_attribute(const void* func, cudaFuncAttribute attr, int value) {
  if (func == nullptr) return tls_last_error = cudaErrorInvalidValue;
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      value > kMaxSharedOptinBytes)
    return tls_last_error = cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(optin_mutex());
  optins()[func] = static_cast<size_t>(value);
  return cudaSuccess;
}

cudaError_t run_grid(const KernelCall& call, const void* func, dim3 grid, dim3 block,
                     size_t shared_bytes) {
  if (std::string problem = check_configuration(func, grid, block, shared_bytes);
      !problem.empty()) {
    return finish_launch(cudaErrorInvalidConfiguration,
                         "mw emulator: invalid launch configuration: " + problem);
  }
  if (tls_worker != nullptr && tls_worker->block != nullptr) {
    return finish_launch(cudaErrorNotSupported,
                         "mw emulator: kernel launched from inside a kernel (dynamic parallelism "
                         "is not emulated)");
  }
  LaunchState launch;
  launch.call = &call;
  launch.grid = grid;
  launch.block = block;
  launch.shared_bytes = shared_bytes;
  launch.total_blocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
  int workers;
  {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mutex);
    workers = s.workers == 0 ? core_count() : s.workers;
    launch.order = s.order;
    launch.seed = s.seed;
    launch.method =
        s.context_switch == MW_EMU_SWITCH_ASM ? SwitchMethod::kAssembly : SwitchMethod::kUcontext;
    launch.stack_bytes = static_cast<size_t>(s.stack_kb) * 1024;
    launch.fragment_permute = s.fragment_permute;
    launch.fragment_seed = s.fragment_seed;
  }
  workers = static_cast<int>(
      std::min<unsigned long long>(static_cast<unsigned long long>(workers), launch.total_blocks));

  WorkerPool& pool = worker_pool();
  {
    std::lock_guard<std::mutex> lock(pool.launch_mutex());
    const std::function<void()> job = [&launch] { run_blocks(launch); };
    pool.run(workers, job);
  }
  // The launching thread's coordinates are meaningless after the launch; reset them.
  threadIdx = {0, 0, 0};
  blockIdx = {0, 0, 0};
  if (launch.failed.load()) return finish_launch(launch.error_status, std::move(launch.error));
  return finish_launch(cudaSuccess, {});
}

const char* last_launch_error_message() { return tls_last_message.c_str(); }

unsigned char* dynamic_shared_memory() {
  return tls_worker != nullptr ? tls_worker->dynamic_shared : nullptr;
}

void sync_threads(const std::source_location& where) {
  // Called from host code (outside any launch): nothing to synchronize.
  if (tls_worker == nullptr || tls_worker->current == nullptr) return;
  Worker& worker = *tls_worker;
  BlockRun& block = *worker.block;
  Fiber& fiber = *worker.current;
  if (block.first_done != nullptr) {
    record_failure(
        worker, format("%s: barrier divergence: thread %s waits at __syncthreads() but thread %s "
                       "of its block has exited",
                       where_text(where).c_str(), triple(fiber.thread_idx).c_str(),
                       triple(block.first_done->thread_idx).c_str()));
    abandon_fiber(worker);
  }
  if (block.at_barrier > 0 && !same_site(block.first_at_barrier->barrier_site, where)) {
    const Fiber& other = *block.first_at_barrier;
    record_failure(
        worker, format("%s: barrier divergence: thread %s waits at __syncthreads() here while "
                       "thread %s waits at __syncthreads() %s",
                       where_text(where).c_str(), triple(fiber.thread_idx).c_str(),
                       triple(other.thread_idx).c_str(), where_text(other.barrier_site).c_str()));
    abandon_fiber(worker);
  }
  if (fiber.pipeline != nullptr) pipeline_switch_point(fiber.pipeline);
  fiber.barrier_site = where;
  fiber.state = FiberState::kAtBarrier;
  if (block.at_barrier++ == 0) block.first_at_barrier = &fiber;
  yield_to_scheduler(worker, fiber, /*final_switch=*/false);
}

PipelineState** current_pipeline_slot() {
  if (tls_worker == nullptr || tls_worker->current == nullptr) return nullptr;
  return &tls_worker->current->pipeline;
}

unsigned long long block_seed() {
  if (tls_worker == nullptr || tls_worker->current == nullptr) return 0;
  const Worker& worker = *tls_worker;
  return (worker.block->block_linear * 0xd1b54a32d192ed03ull) ^
         (static_cast<unsigned long long>(worker.current->linear) * 0x9e3779b97f4a7c15ull);
}

void fail_thread(const char* message, cudaError_t status) {
  if (tls_worker == nullptr || tls_worker->current == nullptr) return;
  Worker& worker = *tls_worker;
  record_failure(worker, message, status);
  abandon_fiber(worker);
}

void misaligned_access(const void* address, size_t bytes, bool store, const char* file, int line) {
  // Host code (outside any launch): the CPU has no alignment fault to mimic.
  if (tls_worker == nullptr || tls_worker->current == nullptr) return;
  Worker& worker = *tls_worker;
  const uintptr_t value = reinterpret_cast<uintptr_t>(address);
  record_failure(
      worker,
      format("%s:%d: misaligned address: %zu-byte vector %s at %p (address %% %zu = %zu); "
             "a GPU faults here, the pointer must be a multiple of %zu bytes",
             file, line, bytes, store ? "store" : "load", address, bytes,
             static_cast<size_t>(value % bytes), bytes),
      cudaErrorMisalignedAddress);
  abandon_fiber(worker);
}

bool fragment_permutation(unsigned long long* seed) {
  if (tls_worker == nullptr || tls_worker->block == nullptr) return false;
  *seed = tls_worker->fragment_seed;
  return tls_worker->fragment_permute;
}

unsigned active_mask() {
  if (tls_worker == nullptr || tls_worker->current == nullptr) return 1u;
  Worker& worker = *tls_worker;
  const BlockRun& block = *worker.block;
  const unsigned warp_base = worker.current->linear & ~31u;
  const unsigned lanes = std::min(32u, block.num_threads - warp_base);
  unsigned mask = 0;
  for (unsigned lane = 0; lane < lanes; ++lane) {
    if (lane_fiber(worker, warp_base, lane).state != FiberState::kDone) mask |= 1u << lane;
  }
  return mask;
}

unsigned long long warp_op(const WarpOpRequest& request) {
  // Host code (outside any launch): a warp of one lane.
  if (tls_worker == nullptr || tls_worker->current == nullptr) return request.value;
  Worker& worker = *tls_worker;
  BlockRun& block = *worker.block;
  Fiber& fiber = *worker.current;
  const unsigned warp_base = fiber.linear & ~31u;
  const unsigned lane = fiber.linear & 31u;
  const unsigned lanes = std::min(32u, block.num_threads - warp_base);
  const unsigned existing = lanes == 32 ? ~0u : (1u << lanes) - 1;
  const unsigned mask = request.mask;

  if (request.width < 1 || request.width > 32 || (request.width & (request.width - 1)) != 0) {
    record_failure(worker, format("%s: %s: width %d is not a power of two in [1, 32]",
                                  where_text(request.where).c_str(), request.name, request.width));
    abandon_fiber(worker);
  }
  if (!(mask >> lane & 1u)) {
    record_failure(worker,
                   format("%s: %s: lane %u calls it with mask 0x%08x, which does not include the "
                          "calling lane",
                          where_text(request.where).c_str(), request.name, lane, mask));
    abandon_fiber(worker);
  }
  if (mask & ~existing) {
    record_failure(worker,
                   format("%s: %s: mask 0x%08x names lanes absent from this warp (it has %u "
                          "lanes) [lane %u]",
                          where_text(request.where).c_str(), request.name, mask, lanes, lane));
    abandon_fiber(worker);
  }
  for (unsigned other = 0; other < lanes; ++other) {
    const Fiber& peer = lane_fiber(worker, warp_base, other);
    if ((mask >> other & 1u) && peer.state == FiberState::kDone) {
      record_failure(worker,
                     format("%s: %s: mask 0x%08x names lane %u (thread %s), which has exited "
                            "[lane %u]%s",
                            where_text(request.where).c_str(), request.name, mask, other,
                            triple(peer.thread_idx).c_str(), lane,
                            request.kind == WarpOpKind::kCollective
                                ? "; a warp-collective call must be reached by every lane of "
                                  "the warp"
                                : ""));
      abandon_fiber(worker);
    }
    if (!peer.warp_arrived) continue;
    const bool related = (mask >> other & 1u) || (peer.warp_request.mask >> lane & 1u);
    if (related && (peer.warp_request.mask != mask || peer.warp_request.kind != request.kind ||
                    peer.warp_request.width != request.width)) {
      record_failure(
          worker, format("%s: %s: lanes disagree: lane %u has mask 0x%08x (width %d) while "
                         "lane %u waits in %s at %s with mask 0x%08x (width %d)",
                         where_text(request.where).c_str(), request.name, lane, mask, request.width,
                         other, peer.warp_request.name, where_text(peer.warp_request.where).c_str(),
                         peer.warp_request.mask, peer.warp_request.width));
      abandon_fiber(worker);
    }
    if (related && request.kind == WarpOpKind::kCollective &&
        record_collective_mismatch(worker, lane, request, other, peer.warp_request)) {
      abandon_fiber(worker);
    }
  }

  fiber.warp_request = request;
  fiber.warp_arrived = true;
  unsigned arrived = 0;
  for (unsigned other = 0; other < lanes; ++other) {
    if ((mask >> other & 1u) && lane_fiber(worker, warp_base, other).warp_arrived) ++arrived;
  }
  if (arrived < static_cast<unsigned>(__builtin_popcount(mask))) {
    fiber.state = FiberState::kAtWarpOp;
    yield_to_scheduler(worker, fiber, /*final_switch=*/false);
    return fiber.warp_result;  // computed by the last lane to arrive
  }
  // Last to arrive: compute every lane's result before anyone deposits again.
  if (request.kind == WarpOpKind::kCollective && request.collective->run != nullptr) {
    void* lane_data[32] = {};
    for (unsigned other = 0; other < lanes; ++other) {
      lane_data[other] = lane_fiber(worker, warp_base, other).warp_request.collective->lane_data;
    }
    request.collective->run(lane_data);
  }
  for (unsigned other = 0; other < lanes; ++other) {
    if (!(mask >> other & 1u)) continue;
    lane_fiber(worker, warp_base, other).warp_result = lane_result(worker, warp_base, other);
  }
  for (unsigned other = 0; other < lanes; ++other) {
    if (!(mask >> other & 1u)) continue;
    Fiber& peer = lane_fiber(worker, warp_base, other);
    peer.warp_arrived = false;
    if (other != lane) peer.state = FiberState::kReady;
  }
  return fiber.warp_result;
}

}  // namespace mw::emu

// ---------------------------------------------------------------------------------------------
// CUDA runtime error functions.
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInitializationError:
      return "initialization error";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress:
      return "misaligned address";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorNotSupported:
      return "operation not supported";
    case cudaErrorUnknown:
      return "unknown error";
  }
  return "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
      return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress:
      return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
    case cudaErrorUnknown:
      return "cudaErrorUnknown";
  }
  return "cudaErrorUnrecognized";
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return mw::emu::tls_last_error = cudaErrorInvalidValue;
  *device = 0;
  return cudaSuccess;
}

// As CUDA: a failed query also becomes the thread's last error (not sticky).
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return mw::emu::tls_last_error = cudaErrorInvalidDevice;
  if (value == nullptr) return mw::emu::tls_last_error = cudaErrorInvalidValue;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = mw::emu::kMaxSharedOptinBytes;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = mw::emu::settings().sm_count;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      return cudaSuccess;
  }
  return mw::emu::tls_last_error = cudaErrorInvalidValue;
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = mw::emu::tls_last_error;
  mw::emu::tls_last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() { return mw::emu::tls_last_error; }

// ---------------------------------------------------------------------------------------------
// Settings (mw_emu_config.h).
extern "C" {

int mw_emu_set_workers(int n) {
  if (n < 0 || n > 1024) return 1;
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.workers = n;
  return 0;
}

int mw_emu_get_workers(void) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.workers == 0 ? mw::emu::core_count() : s.workers;
}

int mw_emu_set_order(int order, unsigned long long seed) {
  if (order < MW_EMU_ORDER_FORWARD || order > MW_EMU_ORDER_SHUFFLE) return 1;
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.order = order;
  s.seed = seed;
  return 0;
}

int mw_emu_get_order(void) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.order;
}

unsigned long long mw_emu_get_order_seed(void) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.seed;
}

int mw_emu_set_context_switch(int method) {
  if (method != MW_EMU_SWITCH_ASM && method != MW_EMU_SWITCH_UCONTEXT) return 1;
  if (method == MW_EMU_SWITCH_ASM && !MW_EMU_HAVE_ASM_SWITCH) return 2;
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.context_switch = method;
  return 0;
}

int mw_emu_get_context_switch(void) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.context_switch;
}

int mw_emu_has_asm_switch(void) { return MW_EMU_HAVE_ASM_SWITCH; }

int mw_emu_set_stack_kb(int kib) {
  if (kib < 16 || kib > 65536) return 1;
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.stack_kb = kib;
  return 0;
}

int mw_emu_get_stack_kb(void) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.stack_kb;
}

int mw_emu_set_fragment_permutation(int enabled, unsigned long long seed) {
  if (enabled != 0 && enabled != 1) return 1;
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.fragment_permute = enabled != 0;
  s.fragment_seed = seed;
  return 0;
}

int mw_emu_get_fragment_permutation(unsigned long long* seed) {
  auto& s = mw::emu::settings();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (seed != nullptr) *seed = s.fragment_seed;
  return s.fragment_permute ? 1 : 0;
}

}  // extern "C"
