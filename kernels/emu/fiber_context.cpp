// Fiber stacks (mmap + guard page) and the context-switch implementations (hand-written for
// x86-64 and aarch64, ucontext everywhere).
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

#if MW_EMU_HAVE_ASM_SWITCH && defined(__x86_64__)
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
#elif MW_EMU_HAVE_ASM_SWITCH && defined(__aarch64__)
// mw_emu_switch_stack(void** save_sp, void* new_sp)            (x0 = save_sp, x1 = new_sp)
//   Stores the AAPCS64 callee-saved state in a 176-byte frame on the current stack: x19-x28,
//   x29 (fp), x30 (lr, where the final ret goes), d8-d15 (only the low 64 bits of v8-v15 are
//   callee-saved) and FPCR (rounding mode, flush-to-zero, default NaN); stores sp in *save_sp,
//   loads new_sp and restores the same frame from there. sp stays 16-byte aligned throughout
//   (Linux enables the sp alignment check). FPCR is written only when it differs: a write may
//   serialize the pipeline, and fibers almost never change it. x18 (platform register) and
//   the caller-saved registers need no saving: the switch is an ordinary call for the compiler.
//   `hint #34` is `bti c` (a no-op without BTI) in case the call ever goes through a veneer.
// mw_emu_fiber_trampoline
//   First "return address" of a new fiber: prepare_context leaves the argument in x19 and the
//   entry function in x20, and fp = 0 ends frame-pointer walks. sp is 16-byte aligned here;
//   the entry never returns (brk catches a bug if it does).
//
// Frame layout, in 8-byte slots from the saved sp (prepare_context builds the same):
//    0 x19   1 x20   2 x21   3 x22   4 x23   5 x24   6 x25   7 x26   8 x27   9 x28
//   10 x29  11 x30  12 d8   13 d9   14 d10  15 d11  16 d12  17 d13  18 d14  19 d15
//   20 FPCR 21 (padding to 16 bytes)
asm(R"(
  .text
  .p2align 4
  .globl mw_emu_switch_stack
  .hidden mw_emu_switch_stack
  .type mw_emu_switch_stack, %function
mw_emu_switch_stack:
  .cfi_startproc
  hint #34
  sub sp, sp, #176
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mrs x9, fpcr
  str x9, [sp, #160]
  mov x10, sp
  str x10, [x0]
  mov sp, x1
  ldr x10, [sp, #160]
  cmp x9, x10
  b.eq 1f
  msr fpcr, x10
1:
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  add sp, sp, #176
  ret
  .cfi_endproc
  .size mw_emu_switch_stack, .-mw_emu_switch_stack

  .p2align 4
  .globl mw_emu_fiber_trampoline
  .hidden mw_emu_fiber_trampoline
  .type mw_emu_fiber_trampoline, %function
mw_emu_fiber_trampoline:
  .cfi_startproc
  .cfi_undefined x30
  mov x0, x19
  blr x20
  brk #0x3e8
  .cfi_endproc
  .size mw_emu_fiber_trampoline, .-mw_emu_fiber_trampoline
)");
#endif

#if MW_EMU_HAVE_ASM_SWITCH
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
#if defined(__x86_64__)
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
#elif defined(__aarch64__)
    // The 176-byte frame mw_emu_switch_stack restores (layout above). After it, sp == top:
    // 16-byte aligned at the trampoline's call. The new fiber inherits this thread's FPCR, as
    // on x86-64 it inherits MXCSR and the x87 control word.
    auto* frame = reinterpret_cast<uint64_t*>(top) - 22;
    for (int slot = 0; slot < 22; ++slot) frame[slot] = 0;  // x21-x29 (fp = 0), d8-d15
    uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    frame[0] = reinterpret_cast<uint64_t>(argument);                   // x19
    frame[1] = reinterpret_cast<uint64_t>(entry);                      // x20
    frame[11] = reinterpret_cast<uint64_t>(&mw_emu_fiber_trampoline);  // x30
    frame[20] = fpcr;
#endif
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
