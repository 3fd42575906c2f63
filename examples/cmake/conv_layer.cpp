// One float32 layer, F(6, 3) on the emulator library through find_package(magma_wino), checked
// against a direct loop in double; exit status 0 when within float32 rounding.
#include <magma_wino.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

void check(mw_status st, const char* what) {
  if (st != MW_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: %s: %s\n", what, mw_status_name(st), mw_last_error_message());
    std::exit(1);
  }
}

}  // namespace

int main() {
  constexpr int N = 1, C = 8, K = 5, H = 13, W = 11, R = 3, P = 1;  // "same" padding
  mw_conv_desc d{};
  d.ndim = 2;
  d.m = 6;
  d.r = R;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  d.in_size[0] = H;
  d.in_size[1] = W;
  d.padding[0] = d.padding[1] = d.padding_end[0] = d.padding_end[1] = P;
  mw_conv_geometry g;
  check(mw_conv_get_geometry(&d, MW_FLOAT32, &g), "geometry");
  const int Ho = int(g.out_size[0]), Wo = int(g.out_size[1]);

  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(N * C * H * W), w(K * C * R * R), y(N * K * Ho * Wo);
  for (float& v : x) v = dist(gen);
  for (float& v : w) v = dist(gen);
  std::vector<float> U(g.positions * K * C), V(g.positions * C * g.num_tiles),
      M(g.positions * K * g.num_tiles);
  check(mw_filter_transform(&d, MW_FLOAT32, w.data(), U.data(), nullptr, 0), "filter transform");
  check(mw_input_transform(&d, MW_FLOAT32, x.data(), V.data(), MW_RELU_NONE, nullptr, 0),
        "input transform");
  check(
      mw_gemm_batched(MW_FLOAT32, g.positions, K, g.num_tiles, C, U.data(), V.data(), M.data(), 0),
      "products");
  check(mw_output_transform(&d, MW_FLOAT32, M.data(), nullptr, y.data(), nullptr, 0),
        "output transform");

  double err = 0.0, scale = 0.0;
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < Ho; ++i)
      for (int j = 0; j < Wo; ++j) {
        double acc = 0.0;
        for (int c = 0; c < C; ++c)
          for (int u = 0; u < R; ++u)
            for (int v = 0; v < R; ++v) {
              const int h = i + u - P, ww = j + v - P;
              if (h >= 0 && h < H && ww >= 0 && ww < W)
                acc += double(x[(c * H + h) * W + ww]) * w[((k * C + c) * R + u) * R + v];
            }
        err = std::max(err, std::abs(acc - y[(k * Ho + i) * Wo + j]));
        scale = std::max(scale, std::abs(acc));
      }
  // magma_wino.accuracy.tolerance(float32, 6, 3, C * 9) = 3.1e-5 (docs/accuracy.md)
  const bool pass = err <= 3.1e-5 * scale;
  std::printf("magma_wino %d, F(6, 3) float32 %dx%d: max |y - direct| / max |direct| = %.3g %s\n",
              mw_get_version(), Ho, Wo, err / scale, pass ? "ok" : "FAILED");
  return pass ? 0 : 1;
}
