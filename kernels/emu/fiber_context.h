// Fiber stacks and execution contexts for the emulator's scheduler (internal header).
//
// Two ways to switch between contexts, chosen per launch:
//   * kAssembly: a hand-written switch that saves only the callee-saved registers plus the
//     floating-point control state (a few ns): on x86-64 rbx, rbp, r12-r15, MXCSR and the x87
//     control word; on aarch64 x19-x30, d8-d15 and FPCR. Compiled only on those two (ELF)
//     targets, and only when the build does not force MW_EMU_FORCE_UCONTEXT;
//   * kUcontext: glibc makecontext/swapcontext, portable but ~10x slower (swapcontext makes a
//     sigprocmask system call on every switch).
#pragma once

#include <ucontext.h>

#include <cstddef>

#if (defined(__x86_64__) || defined(__aarch64__)) && defined(__ELF__) && \
    !defined(MW_EMU_FORCE_UCONTEXT)
#define MW_EMU_HAVE_ASM_SWITCH 1
#else
#define MW_EMU_HAVE_ASM_SWITCH 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MW_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MW_EMU_ASAN 1
#endif
#endif
#ifndef MW_EMU_ASAN
#define MW_EMU_ASAN 0
#endif

namespace mw::emu {

enum class SwitchMethod : int { kAssembly = 0, kUcontext = 1 };

// A fiber stack: [lowest, lowest + size) is usable, one PROT_NONE guard page lies below it so
// that a stack overflow faults instead of silently corrupting a neighbouring stack.
struct FiberStack {
  void* lowest = nullptr;
  size_t size = 0;
  void* mapping = nullptr;
  size_t mapping_size = 0;
};
// Returns a stack with at least `usable_bytes` (rounded up to pages); throws std::bad_alloc.
FiberStack allocate_fiber_stack(size_t usable_bytes);
void free_fiber_stack(FiberStack& stack);

struct ExecutionContext {
  void* stack_pointer = nullptr;  // kAssembly: where the switch saved the registers
  ucontext_t ucontext;            // kUcontext
  void (*entry)(void*) = nullptr;
  void* entry_argument = nullptr;
};

// Sets `context` up so that switching to it calls entry(argument) on `stack`. `entry` must
// never return (it switches away for the last time instead).
void prepare_context(ExecutionContext& context, const FiberStack& stack, void (*entry)(void*),
                     void* argument, SwitchMethod method);

#if MW_EMU_HAVE_ASM_SWITCH
extern "C" void mw_emu_switch_stack(void** save_sp, void* new_sp);
#endif

// Saves the running context into `from` and resumes `to`. Inline: it is on the hot path of
// every barrier and warp operation.
inline void switch_context(ExecutionContext& from, ExecutionContext& to, SwitchMethod method) {
#if MW_EMU_HAVE_ASM_SWITCH
  if (method == SwitchMethod::kAssembly) {
    mw_emu_switch_stack(&from.stack_pointer, to.stack_pointer);
    return;
  }
#endif
  (void)method;
  swapcontext(&from.ucontext, &to.ucontext);
}

// AddressSanitizer must be told about stack switches (it tracks one stack per thread). These
// are no-ops in builds without ASan.
#if MW_EMU_ASAN
void sanitizer_start_switch(void** fake_stack_save, const void* bottom, size_t size);
void sanitizer_finish_switch(void* fake_stack_save, const void** bottom_old, size_t* size_old);
// Clears ASan's poisoning left on a stack by frames of a fiber that was abandoned or finished.
void sanitizer_forget_stack(const FiberStack& stack);
#else
inline void sanitizer_start_switch(void**, const void*, size_t) {}
inline void sanitizer_finish_switch(void*, const void**, size_t*) {}
inline void sanitizer_forget_stack(const FiberStack&) {}
#endif

}  // namespace mw::emu
