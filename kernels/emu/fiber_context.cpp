// Fiber stacks (mmap + guard page) and the two context-switch implementations.
#include "fiber_context.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#if MW_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if MW_EMU_HAVE_ASM_SWITCH
// mw_emu_switch_stack(void** save_sp, void* new_sp)
//   Pushes the System V callee-saved registers and the floating-point control state (MXCSR,
//   x87 control word) on the current stack, stores the stack pointer in *save_sp, loads new_sp
//   and pops the same set from there. Caller-saved registers need no saving: the switch is an
//   ordinary function call for the compiler.
// mw_emu_fiber_trampoline
//   First "return address" of a new fiber: prepare_context leaves the argument in r12 and the
//   entry function in r13. The stack is 16-byte aligned here, so the call keeps the ABI's
//   alignment; the entry never returns (ud2 catches a bug if it does).
asm(R"(
  .text
  .p2align 4
  .globl mw_emu_switch_stack
  .hidden mw_emu_switch_stack
  .type mw_emu_switch_stack, @function
mw_emu_switch_stack:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size mw_emu_switch_stack, .-mw_emu_switch_stack

  .p2align 4
  .globl mw_emu_fiber_trampoline
  .hidden mw_emu_fiber_trampoline
  .type mw_emu_fiber_trampoline, @function
mw_emu_fiber_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  endbr64
  movq %r12, %rdi
  call *%r13
  ud2
  .cfi_endproc
  .size mw_emu_fiber_trampoline, .-mw_emu_fiber_trampoline
)");

extern "C" void mw_emu_fiber_trampoline();
#endif

namespace mw::emu {
namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// makecontext passes only int arguments: the context's address travels as two halves.
void ucontext_trampoline(unsigned int high, unsigned int low) {
  auto* context = reinterpret_cast<ExecutionContext*>((static_cast<uintptr_t>(high) << 32) |
                                                      static_cast<uintptr_t>(low));
  context->entry(context->entry_argument);
  std::fputs("mw emulator: a fiber entry returned\n", stderr);
  std::abort();
}

}  // namespace

FiberStack allocate_fiber_stack(size_t usable_bytes) {
  const size_t page = page_size();
  FiberStack stack;
  stack.size = (usable_bytes + page - 1) / page * page;
  stack.mapping_size = stack.size + page;
  stack.mapping = mmap(nullptr, stack.mapping_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stack.mapping == MAP_FAILED) throw std::bad_alloc();
  // Stacks grow down: the guard page is the lowest page of the mapping.
  if (mprotect(stack.mapping, page, PROT_NONE) != 0) {
    munmap(stack.mapping, stack.mapping_size);
    throw std::bad_alloc();
  }
  stack.lowest = static_cast<char*>(stack.mapping) + page;
  return stack;
}

void free_fiber_stack(FiberStack& stack) {
  if (stack.mapping != nullptr) munmap(stack.mapping, stack.mapping_size);
  stack = FiberStack{};
}

void prepare_context(ExecutionContext& context, const FiberStack& stack, void (*entry)(void*),
                     void* argument, SwitchMethod method) {
  context.entry = entry;
  context.entry_argument = argument;
#if MW_EMU_HAVE_ASM_SWITCH
  if (method == SwitchMethod::kAssembly) {
    auto top = reinterpret_cast<uintptr_t>(stack.lowest) + stack.size;
    top &= ~uintptr_t{15};
    // The frame mw_emu_switch_stack pops: control words, r15, r14, r13, r12, rbx, rbp, return.
    auto* frame = reinterpret_cast<uint64_t*>(top) - 8;
    uint32_t mxcsr;
    uint16_t x87_control;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(x87_control));
    frame[0] = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(x87_control) << 32);
    frame[1] = 0;                                     // r15
    frame[2] = 0;                                     // r14
    frame[3] = reinterpret_cast<uint64_t>(entry);     // r13
    frame[4] = reinterpret_cast<uint64_t>(argument);  // r12
    frame[5] = 0;                                     // rbx
    frame[6] = 0;                                     // rbp: ends frame-pointer walks
    frame[7] = reinterpret_cast<uint64_t>(&mw_emu_fiber_trampoline);
    context.stack_pointer = frame;
    return;
  }
#endif
  (void)method;
  getcontext(&context.ucontext);
  context.ucontext.uc_stack.ss_sp = stack.lowest;
  context.ucontext.uc_stack.ss_size = stack.size;
  context.ucontext.uc_link = nullptr;
  const auto address = reinterpret_cast<uintptr_t>(&context);
  makecontext(&context.ucontext, reinterpret_cast<void (*)()>(&ucontext_trampoline), 2,
              static_cast<unsigned int>(address >> 32), static_cast<unsigned int>(address));
}

#if MW_EMU_ASAN
void sanitizer_start_switch(void** fake_stack_save, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
}
void sanitizer_finish_switch(void* fake_stack_save, const void** bottom_old, size_t* size_old) {
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
}
void sanitizer_forget_stack(const FiberStack& stack) {
  __asan_unpoison_memory_region(stack.lowest, stack.size);
}
#endif

}  // namespace mw::emu
