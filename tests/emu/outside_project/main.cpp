// Runs outside_gemm64 (gemm_kernel.cu) on the emulator and writes a, b and c (64 x 64 float32
// each, row-major) to the file named by argv[1]; the test compares c with NumPy.
#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" int outside_gemm64(const float* a, const float* b, float* c);
extern "C" const char* outside_last_error();

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT\n", argv[0]);
    return 2;
  }
  constexpr int kCount = 64 * 64;
  alignas(64) static float a[kCount], b[kCount], c[kCount];
  std::uint64_t state = 0x243f6a8885a308d3ull;  // a fixed LCG: values in [-1, 1)
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 40) / (1ull << 23) - 1.0);
  };
  for (float& x : a) x = next();
  for (float& x : b) x = next();
  const int status = outside_gemm64(a, b, c);
  if (status != 0) {
    std::fprintf(stderr, "outside_gemm64 failed: %d %s\n", status, outside_last_error());
    return 1;
  }
  std::FILE* file = std::fopen(argv[1], "wb");
  if (file == nullptr) return 1;
  const bool ok = std::fwrite(a, sizeof(float), kCount, file) == kCount &&
                  std::fwrite(b, sizeof(float), kCount, file) == kCount &&
                  std::fwrite(c, sizeof(float), kCount, file) == kCount;
  std::fclose(file);
  std::puts(ok ? "outside_gemm64: ok" : "outside_gemm64: write failed");
  return ok ? 0 : 1;
}
