// Standalone check of the emulator's hand-written aarch64 context switch (kernels/emu/
// fiber_context.cpp), meant to be cross-compiled and run under qemu-aarch64 (see
// test_aarch64_switch.py, which also runs tests/emu/emu_selftest_main.cpp the same way):
//
//   aarch64-linux-gnu-g++ -std=c++20 -O2 -static -Ikernels -o harness
//       tests/emu/aarch64/fiber_switch_harness.cpp kernels/emu/fiber_context.cpp
//   qemu-aarch64 ./harness            # prints "aarch64 fiber harness: all checks passed"
//
// Checks:
//   registers   fibers and the scheduler ping-pong through mw_emu_switch_stack with x19-x28
//               and d8-d15 filled with values unique to (fiber, round); every one must survive
//               every switch, and x29 must still be the frame pointer of the caller;
//   fpcr        each fiber runs with its own FPCR (rounding mode, flush-to-zero) that must
//               survive switches and take effect; a new fiber starts with the FPCR that was
//               current when it was prepared;
//   locals      ordinary C++ with many integer and double locals live across switches (asm
//               and ucontext switch);
//   recursion   deep recursion within a fiber stack, switching from deep frames, sp 16-byte
//               aligned in the entry;
//   guard       a runaway recursion in a fiber dies of SIGSEGV on the guard page (forked child).
#include <sys/wait.h>
#include <unistd.h>

#include <cfenv>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu/fiber_context.h"

#if !defined(__aarch64__) || !MW_EMU_HAVE_ASM_SWITCH
#error "this harness checks the hand-written aarch64 switch: build it for aarch64"
#endif

// mw_test_switch_with_pattern(void** save_sp, void* new_sp, uint64_t seed, uint64_t* out)
//   Saves its caller's callee-saved registers, sets x19..x28 = seed + 19..28 and the bits of
//   d8..d15 = seed + 0x108..0x10f, sets x29 = sp, calls mw_emu_switch_stack(save_sp, new_sp),
//   and once resumed stores x19..x28 in out[0..9], d8..d15 in out[10..17] and x29 - sp in
//   out[18]; then restores the caller's registers and returns.
asm(R"(
  .text
  .p2align 4
  .globl mw_test_switch_with_pattern
  .type mw_test_switch_with_pattern, %function
mw_test_switch_with_pattern:
  stp x29, x30, [sp, #-176]!
  stp x19, x20, [sp, #16]
  stp x21, x22, [sp, #32]
  stp x23, x24, [sp, #48]
  stp x25, x26, [sp, #64]
  stp x27, x28, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  str x3, [sp, #160]
  mov x29, sp
  add x19, x2, #19
  add x20, x2, #20
  add x21, x2, #21
  add x22, x2, #22
  add x23, x2, #23
  add x24, x2, #24
  add x25, x2, #25
  add x26, x2, #26
  add x27, x2, #27
  add x28, x2, #28
  add x9, x2, #0x108
  fmov d8, x9
  add x9, x2, #0x109
  fmov d9, x9
  add x9, x2, #0x10a
  fmov d10, x9
  add x9, x2, #0x10b
  fmov d11, x9
  add x9, x2, #0x10c
  fmov d12, x9
  add x9, x2, #0x10d
  fmov d13, x9
  add x9, x2, #0x10e
  fmov d14, x9
  add x9, x2, #0x10f
  fmov d15, x9
  bl mw_emu_switch_stack
  ldr x3, [sp, #160]
  stp x19, x20, [x3, #0]
  stp x21, x22, [x3, #16]
  stp x23, x24, [x3, #32]
  stp x25, x26, [x3, #48]
  stp x27, x28, [x3, #64]
  stp d8, d9, [x3, #80]
  stp d10, d11, [x3, #96]
  stp d12, d13, [x3, #112]
  stp d14, d15, [x3, #128]
  mov x9, sp
  sub x9, x29, x9
  str x9, [x3, #144]
  ldp x19, x20, [sp, #16]
  ldp x21, x22, [sp, #32]
  ldp x23, x24, [sp, #48]
  ldp x25, x26, [sp, #64]
  ldp x27, x28, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  ldp x29, x30, [sp], #176
  ret
  .size mw_test_switch_with_pattern, .-mw_test_switch_with_pattern
)");
extern "C" void mw_test_switch_with_pattern(void** save_sp, void* new_sp, uint64_t seed,
                                            uint64_t* out);

namespace {

using mw::emu::ExecutionContext;
using mw::emu::FiberStack;
using mw::emu::SwitchMethod;

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

uint64_t read_fpcr() {
  uint64_t value;
  asm volatile("mrs %0, fpcr" : "=r"(value));
  return value;
}
void write_fpcr(uint64_t value) { asm volatile("msr fpcr, %0" : : "r"(value)); }
constexpr uint64_t kFpcrFlushToZero = uint64_t{1} << 24;
constexpr uint64_t kFpcrRoundingMask = uint64_t{3} << 22;

// Counts mismatches between out[] and the pattern mw_test_switch_with_pattern set for `seed`.
int pattern_errors(const uint64_t* out, uint64_t seed) {
  int errors = 0;
  for (int r = 0; r < 10; ++r) errors += out[r] != seed + 19 + r;
  for (int d = 0; d < 8; ++d) errors += out[10 + d] != seed + 0x108 + d;
  errors += out[18] != 0;
  return errors;
}

// ---- registers + fpcr: scheduler and fibers ping-pong with register patterns ---------------
constexpr int kFibers = 4;
constexpr int kRounds = 50000;

struct PingPong {
  ExecutionContext scheduler;
  ExecutionContext fibers[kFibers];
  FiberStack stacks[kFibers];
  uint64_t fiber_fpcr[kFibers];
  uint64_t initial_fpcr[kFibers];
  long register_errors = 0;
  long fpcr_errors = 0;
  long rounding_errors = 0;
  int finished = 0;
};
PingPong* ping_pong = nullptr;

struct FiberArgument {
  int index;
};
FiberArgument fiber_arguments[kFibers];

[[noreturn]] void ping_pong_fiber(void* argument) {
  const int index = static_cast<FiberArgument*>(argument)->index;
  PingPong& p = *ping_pong;
  p.initial_fpcr[index] = read_fpcr();
  write_fpcr(p.fiber_fpcr[index]);
  uint64_t out[19];
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t seed = (uint64_t{0xF1} << 56) | (uint64_t(index) << 40) | (uint64_t(round) << 9);
    mw_test_switch_with_pattern(&p.fibers[index].stack_pointer, p.scheduler.stack_pointer, seed,
                                out);
    p.register_errors += pattern_errors(out, seed);
    p.fpcr_errors += read_fpcr() != p.fiber_fpcr[index];
    // The rounding mode must take effect, not merely be stored: 1 + 2^-30 rounds up to the
    // next float above 1 only under FE_UPWARD.
    volatile float one = 1.0f, tiny = 0x1p-30f;
    const bool up = one + tiny > 1.0f;
    p.rounding_errors += up != ((p.fiber_fpcr[index] & kFpcrRoundingMask) == (uint64_t{1} << 22));
  }
  ++p.finished;
  for (;;) {  // done: hand control back for good
    mw::emu::switch_context(p.fibers[index], p.scheduler, SwitchMethod::kAssembly);
  }
}

void check_registers_and_fpcr() {
  PingPong p;
  ping_pong = &p;
  const uint64_t base = read_fpcr() & ~(kFpcrRoundingMask | kFpcrFlushToZero);
  const uint64_t scheduler_fpcr = base;  // round to nearest
  // Fibers: upward, downward, toward zero, nearest + flush-to-zero.
  const uint64_t modes[kFibers] = {base | (uint64_t{1} << 22), base | (uint64_t{2} << 22),
                                   base | (uint64_t{3} << 22), base | kFpcrFlushToZero};
  // Fibers are prepared while FPCR = downward; they must start with that, not with the
  // scheduler's FPCR at the time of the first switch.
  const uint64_t prepare_fpcr = base | (uint64_t{2} << 22);
  write_fpcr(prepare_fpcr);
  for (int f = 0; f < kFibers; ++f) {
    p.fiber_fpcr[f] = modes[f];
    p.stacks[f] = mw::emu::allocate_fiber_stack(64 * 1024);
    fiber_arguments[f].index = f;
    mw::emu::prepare_context(p.fibers[f], p.stacks[f], &ping_pong_fiber, &fiber_arguments[f],
                             SwitchMethod::kAssembly);
  }
  write_fpcr(scheduler_fpcr);

  long scheduler_errors = 0, scheduler_fpcr_errors = 0;
  uint64_t out[19];
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round <= kRounds; ++round) {
    for (int f = 0; f < kFibers; ++f) {
      const uint64_t seed = (uint64_t{0x5C} << 56) | (uint64_t(f) << 40) | (uint64_t(round) << 9);
      mw_test_switch_with_pattern(&p.scheduler.stack_pointer, p.fibers[f].stack_pointer, seed, out);
      scheduler_errors += pattern_errors(out, seed);
      scheduler_fpcr_errors += read_fpcr() != scheduler_fpcr;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long switches = 2L * kFibers * (kRounds + 1);
  std::printf("     %ld switches in %.3f s (%.0f ns per switch, emulated)\n", switches, seconds,
              seconds / switches * 1e9);

  bool initial_ok = true;
  for (int f = 0; f < kFibers; ++f) initial_ok &= p.initial_fpcr[f] == prepare_fpcr;
  check(p.finished == kFibers, "every fiber ran all rounds");
  check(scheduler_errors == 0 && p.register_errors == 0,
        "x19-x28, d8-d15 and x29 survive every switch (scheduler and fibers)");
  check(scheduler_fpcr_errors == 0 && p.fpcr_errors == 0, "each context keeps its own FPCR");
  check(p.rounding_errors == 0, "each fiber's rounding mode takes effect");
  check(initial_ok, "a new fiber starts with the FPCR current at prepare_context");
  if (scheduler_errors + p.register_errors + scheduler_fpcr_errors + p.fpcr_errors != 0) {
    std::printf("     register errors: scheduler %ld, fibers %ld; FPCR errors %ld, %ld\n",
                scheduler_errors, p.register_errors, scheduler_fpcr_errors, p.fpcr_errors);
  }
  for (auto& stack : p.stacks) mw::emu::free_fiber_stack(stack);
  ping_pong = nullptr;
}

// ---- locals: plain C++ state live across switches ------------------------------------------
struct Locals {
  ExecutionContext scheduler;
  ExecutionContext fiber;
  SwitchMethod method;
  uint64_t seed;
  uint64_t result_int = 0;
  double result_double = 0;
  bool done = false;
};

// 12 integers and 10 doubles, updated together; the fiber keeps them live across every switch:
// more than the callee-saved registers, so some live in callee-saved registers and the rest in
// the fiber's stack frame.
// clang-format off
#define LOCALS_INIT(seed)                                                                          \
  uint64_t a = (seed), b = a * 3 + 1, c = b ^ 0x55, d = c + 7, e = d * 5, f = e ^ a,               \
           g = f + b, h = g * 9, i = h ^ c, j = i + d, k = j * 11, m = k ^ e;                      \
  double p = static_cast<double>(a & 0xff) * 0.5, q = p + 1.25, r = q * 1.5, s = r - 0.75,         \
         t = s * 2.0, u = t + 3.0, v = u * 0.25, w = v + 8.0, x = w * 1.125, y = x - 1.0
#define LOCALS_STEP()                                                                              \
  do {                                                                                             \
    a += b; b ^= c; c += d; d ^= e; e += f; f ^= g; g += h; h ^= i; i += j; j ^= k; k += m;        \
    m ^= a;                                                                                        \
    p += 1.0; q -= 0.5; r += 0.25; s *= 1.0; t += 2.0; u -= 1.0; v += 0.125; w += 4.0;             \
    x -= 2.0; y += 0.5;                                                                            \
  } while (false)
#define LOCALS_INT_RESULT() (a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^ m)
#define LOCALS_DOUBLE_RESULT() (p + q + r + s + t + u + v + w + x + y)
// clang-format on

[[noreturn]] void locals_fiber(void* argument) {
  Locals& l = *static_cast<Locals*>(argument);
  LOCALS_INIT(l.seed);
  for (int round = 0; round < 2000; ++round) {
    mw::emu::switch_context(l.fiber, l.scheduler, l.method);
    LOCALS_STEP();
  }
  l.result_int = LOCALS_INT_RESULT();
  l.result_double = LOCALS_DOUBLE_RESULT();
  l.done = true;
  for (;;) mw::emu::switch_context(l.fiber, l.scheduler, l.method);
}

// The same computation without switches.
void locals_reference(uint64_t seed, uint64_t* result_int, double* result_double) {
  volatile uint64_t hidden = seed;  // keeps the compiler from folding everything
  LOCALS_INIT(hidden);
  for (int round = 0; round < 2000; ++round) {
    LOCALS_STEP();
  }
  *result_int = LOCALS_INT_RESULT();
  *result_double = LOCALS_DOUBLE_RESULT();
}

void check_locals(SwitchMethod method, const char* what) {
  constexpr int kCount = 3;
  Locals locals[kCount];
  FiberStack stacks[kCount];
  for (int n = 0; n < kCount; ++n) {
    locals[n].method = method;
    locals[n].seed = 0x1234567ull * (n + 1);
    stacks[n] = mw::emu::allocate_fiber_stack(64 * 1024);
    mw::emu::prepare_context(locals[n].fiber, stacks[n], &locals_fiber, &locals[n], method);
  }
  // Interleave the fibers, as the emulator's scheduler does.
  for (bool any = true; any;) {
    any = false;
    for (auto& l : locals) {
      if (l.done) continue;
      mw::emu::switch_context(l.scheduler, l.fiber, method);
      any = true;
    }
  }
  bool ok = true;
  for (auto& l : locals) {
    uint64_t expected_int;
    double expected_double;
    locals_reference(l.seed, &expected_int, &expected_double);
    ok &= l.result_int == expected_int && l.result_double == expected_double;
  }
  check(ok, what);
  for (auto& stack : stacks) mw::emu::free_fiber_stack(stack);
}

// ---- recursion: deep frames in a 64 KiB fiber stack ----------------------------------------
struct Recursion {
  ExecutionContext scheduler;
  ExecutionContext fiber;
  int depth = 0;
  uint64_t result = 0;
  uint64_t entry_sp = 0;
  long switches = 0;
  bool done = false;
};
Recursion* recursion = nullptr;

__attribute__((noinline)) uint64_t recurse(int level) {
  volatile unsigned char frame[160];  // ~200 bytes per level in all
  for (int n = 0; n < 160; ++n) frame[n] = static_cast<unsigned char>(level + n);
  if (level % 16 == 0) {  // switch away from deep inside the stack now and then
    ++recursion->switches;
    mw::emu::switch_context(recursion->fiber, recursion->scheduler, SwitchMethod::kAssembly);
  }
  const uint64_t below = level == 0 ? 0 : recurse(level - 1);
  uint64_t sum = 0;
  for (int n = 0; n < 160; ++n) sum += frame[n];
  return below * 31 + sum;
}

uint64_t recurse_reference(int level) {
  uint64_t total = 0;
  for (int l = 0; l <= level; ++l) {
    uint64_t sum = 0;
    for (int n = 0; n < 160; ++n) sum += static_cast<unsigned char>(l + n);
    total = total * 31 + sum;
  }
  return total;
}

[[noreturn]] void recursion_fiber(void* argument) {
  Recursion& r = *static_cast<Recursion*>(argument);
  asm volatile("mov %0, sp" : "=r"(r.entry_sp));
  r.result = recurse(r.depth);
  r.done = true;
  for (;;) mw::emu::switch_context(r.fiber, r.scheduler, SwitchMethod::kAssembly);
}

void check_recursion() {
  Recursion r;
  recursion = &r;
  FiberStack stack = mw::emu::allocate_fiber_stack(64 * 1024);
  r.depth = 250;  // ~50 KiB of the 64 KiB stack
  mw::emu::prepare_context(r.fiber, stack, &recursion_fiber, &r, SwitchMethod::kAssembly);
  while (!r.done) mw::emu::switch_context(r.scheduler, r.fiber, SwitchMethod::kAssembly);
  check(r.entry_sp % 16 == 0, "sp is 16-byte aligned in a new fiber's entry");
  check(r.result == recurse_reference(r.depth) && r.switches == r.depth / 16 + 1,
        "deep recursion with switches from deep frames gives the exact result");
  mw::emu::free_fiber_stack(stack);
  recursion = nullptr;
}

// ---- guard: a stack overflow faults ---------------------------------------------------------
ExecutionContext guard_scheduler, guard_fiber;

volatile uint64_t runaway_limit = ~uint64_t{0};  // never reached; hides the recursion

__attribute__((noinline)) uint64_t runaway(uint64_t level) {
  volatile unsigned char frame[512];
  frame[0] = static_cast<unsigned char>(level);
  if (level == runaway_limit) return 0;
  return runaway(level + 1) + frame[0];
}

[[noreturn]] void runaway_fiber(void*) {
  std::printf("%" PRIu64 "\n", runaway(0));
  std::_Exit(0);  // not reached
}

void check_guard_page() {
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    FiberStack stack = mw::emu::allocate_fiber_stack(64 * 1024);
    mw::emu::prepare_context(guard_fiber, stack, &runaway_fiber, nullptr, SwitchMethod::kAssembly);
    mw::emu::switch_context(guard_scheduler, guard_fiber, SwitchMethod::kAssembly);
    std::_Exit(0);
  }
  int status = 0;
  const bool waited = child > 0 && waitpid(child, &status, 0) == child;
  check(waited && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
        "a runaway recursion in a fiber dies of SIGSEGV on the guard page");
}

}  // namespace

int main() {
  std::printf("aarch64 fiber harness (MW_EMU_HAVE_ASM_SWITCH=%d)\n", MW_EMU_HAVE_ASM_SWITCH);
  check_registers_and_fpcr();
  check_locals(SwitchMethod::kAssembly, "locals live across switches (asm switch)");
  check_locals(SwitchMethod::kUcontext, "locals live across switches (ucontext switch)");
  check_recursion();
  check_guard_page();
  if (failures != 0) {
    std::printf("aarch64 fiber harness: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("aarch64 fiber harness: all checks passed\n");
  return 0;
}
