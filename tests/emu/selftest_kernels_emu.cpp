// The emulator build of the self-test kernels: g++ compiles the unchanged CUDA source.
#include "selftest_kernels.cu"
