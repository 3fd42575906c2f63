/* Runtime settings of the CUDA emulator (C API, used from Cython).
 *
 * Defaults come from the environment when the first launch or setting happens:
 *   MW_EMU_WORKERS          worker threads; 0 or unset = number of cores
 *   MW_EMU_ORDER            forward | reverse | shuffle[:seed]   order fibers of a block run in
 *   MW_EMU_CONTEXT_SWITCH   asm | ucontext                       (asm where built)
 *   MW_EMU_STACK_KB         fiber stack size in KiB (default 64, 512 under AddressSanitizer)
 *   MW_EMU_WMMA_PERMUTE     off | seed   permute the element-to-lane mapping of WMMA fragments
 *   MW_EMU_ASYNC_COPY       late | random[:seed]   when __pipeline_memcpy_async copies complete
 * All setters return 0 on success and nonzero (leaving the setting unchanged) on a bad argument.
 * Settings are process-wide (per copy of the emulator library) and apply from the next launch.
 */
#ifndef MW_EMU_CONFIG_H
#define MW_EMU_CONFIG_H

#ifdef __cplusplus
extern "C" {
#endif

enum { MW_EMU_ORDER_FORWARD = 0, MW_EMU_ORDER_REVERSE = 1, MW_EMU_ORDER_SHUFFLE = 2 };

enum { MW_EMU_SWITCH_ASM = 0, MW_EMU_SWITCH_UCONTEXT = 1 };

/* n = 0 selects the number of cores; 1 <= n <= 1024 otherwise. */
int mw_emu_set_workers(int n);
/* The configured count (the number of cores when set to 0). */
int mw_emu_get_workers(void);

/* order: MW_EMU_ORDER_*; seed is used by MW_EMU_ORDER_SHUFFLE (each block gets its own
   permutation derived from seed and the block index, so results do not depend on workers). */
int mw_emu_set_order(int order, unsigned long long seed);
int mw_emu_get_order(void);
unsigned long long mw_emu_get_order_seed(void);

/* method: MW_EMU_SWITCH_*; MW_EMU_SWITCH_ASM fails (returns nonzero) in builds without it. */
int mw_emu_set_context_switch(int method);
int mw_emu_get_context_switch(void);
/* 1 when the hand-written (x86-64 or aarch64) switch is compiled in. */
int mw_emu_has_asm_switch(void);

/* Fiber stack size in KiB (16 .. 65536); applies to stacks created afterwards. */
int mw_emu_set_stack_kb(int kib);
int mw_emu_get_stack_kb(void);

/* WMMA fragments (<mma.h>): enabled = 1 permutes the element-to-lane mapping of every fragment
   type by a permutation derived from seed (the same for all blocks and warps of a launch);
   0 restores the default mapping. get returns enabled and stores the seed (seed may be NULL). */
int mw_emu_set_fragment_permutation(int enabled, unsigned long long seed);
int mw_emu_get_fragment_permutation(unsigned long long* seed);

/* Asynchronous copies (__pipeline_memcpy_async): LATE performs each copy at the wait that covers
   it (or at the thread's exit); RANDOM may perform it earlier, at a barrier or pipeline call of
   its thread between issue and that wait, by a coin seeded from seed, block and thread. */
enum { MW_EMU_ASYNC_COPY_LATE = 0, MW_EMU_ASYNC_COPY_RANDOM = 1 };
int mw_emu_set_async_copy(int mode, unsigned long long seed);
int mw_emu_get_async_copy(void);
unsigned long long mw_emu_get_async_copy_seed(void);

#ifdef __cplusplus
}
#endif

#endif /* MW_EMU_CONFIG_H */
