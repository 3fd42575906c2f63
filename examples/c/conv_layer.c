/* One convolution layer through magma_wino's C ABI, checked against a direct loop.
 *
 * Build against the installed emulator library (the CUDA kernels' source, run on the CPU):
 *   cc conv_layer.c $(pkg-config --cflags --libs magma_wino_emu) -o conv_layer && ./conv_layer
 * (pip install: PKG_CONFIG_PATH=$(python -m magma_wino --pkgconfig-dir)).  With libmagma_wino
 * (CUDA) the same calls take device pointers: allocate with cudaMalloc and copy instead.
 *
 * The layer: N = 2, C = 3, K = 4, 9 x 10 input, 3 x 3 filters, padding 1 before and 2 after on
 * each axis, run twice: F(4, 3) with the specialised kernels (matrices NULL) and F(3, 3) with
 * the generic ones, whose matrices mw_winograd_matrices computes.  Exit status 0 when both
 * match the direct convolution within the library's float64 tolerance for the layer
 * (magma_wino.accuracy.tolerance(float64, m, 3, C * 9): 3.4e-14 for F(4, 3), 1.2e-14 for F(3, 3)).
 */
#include <magma_wino.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 2, C = 3, K = 4, H = 9, W = 10, R = 3, LO = 1, HI = 2 };
#define HO (H + LO + HI - R + 1)
#define WO (W + LO + HI - R + 1)

static int ok(mw_status st, const char* what) {
  if (st != MW_STATUS_SUCCESS) {
    fprintf(stderr, "%s: %s: %s\n", what, mw_status_name(st), mw_last_error_message());
    return 0;
  }
  return 1;
}

/* y = conv(x, w) + b by the three phases of F(m, 3); matrices NULL: the specialised kernels. */
static int winograd_layer(int m, const double* x, const double* w, const double* b,
                          const double* matrices, double* y) {
  mw_conv_desc d = {0};
  d.ndim = 2;
  d.m = m;
  d.r = R;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  d.in_size[0] = H;
  d.in_size[1] = W;
  d.padding[0] = d.padding[1] = LO;
  d.padding_end[0] = d.padding_end[1] = HI;
  mw_conv_geometry g;
  if (!ok(mw_conv_get_geometry(&d, MW_FLOAT64, &g), "geometry")) return 0;
  double* U = malloc(sizeof(double) * g.positions * K * C);
  double* V = malloc(sizeof(double) * g.positions * C * g.num_tiles);
  double* M = malloc(sizeof(double) * g.positions * K * g.num_tiles);
  int good =
      ok(mw_filter_transform(&d, MW_FLOAT64, w, U, matrices, 0), "filter transform") &&
      ok(mw_input_transform(&d, MW_FLOAT64, x, V, MW_RELU_NONE, matrices, 0), "input transform") &&
      ok(mw_gemm_batched(MW_FLOAT64, g.positions, K, g.num_tiles, C, U, V, M, 0), "products") &&
      ok(mw_output_transform(&d, MW_FLOAT64, M, b, y, matrices, 0), "output transform");
  free(U);
  free(V);
  free(M);
  return good;
}

int main(void) {
  static double x[N * C * H * W], w[K * C * R * R], b[K], y[N * K * HO * WO], ref[N * K * HO * WO];
  unsigned s = 12345u;
  for (int i = 0; i < N * C * H * W; ++i)
    x[i] = (double)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5;
  for (int i = 0; i < K * C * R * R; ++i)
    w[i] = (double)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5;
  for (int k = 0; k < K; ++k) b[k] = 0.25 * k;
  double scale = 0.0;
  for (int n = 0; n < N; ++n) /* the direct correlation, zero padding LO before, HI after */
    for (int k = 0; k < K; ++k)
      for (int i = 0; i < HO; ++i)
        for (int j = 0; j < WO; ++j) {
          double acc = b[k];
          for (int c = 0; c < C; ++c)
            for (int u = 0; u < R; ++u)
              for (int v = 0; v < R; ++v) {
                const int h = i + u - LO, ww = j + v - LO;
                if (h >= 0 && h < H && ww >= 0 && ww < W)
                  acc += x[((n * C + c) * H + h) * W + ww] * w[((k * C + c) * R + u) * R + v];
              }
          ref[((n * K + k) * HO + i) * WO + j] = acc;
          if (fabs(acc) > scale) scale = fabs(acc);
        }
  printf("magma_wino %d (header %d): %s\n", mw_get_version(), MW_VERSION, mw_build_info());
  double mats[3 * 5 + 5 * 3 + 5 * 5]; /* F(3, 3): alpha = 5 */
  if (!ok(mw_winograd_matrices(3, 3, NULL, NULL, MW_FLOAT64, mats), "mw_winograd_matrices"))
    return 1;
  const struct {
    int m;
    const double* matrices;
    const char* kind;
    double tol;
  } runs[] = {{4, NULL, "specialised", 3.4e-14},
              {3, mats, "generic, mw_winograd_matrices", 1.2e-14}};
  int status = 0;
  for (int t = 0; t < 2; ++t) {
    if (!winograd_layer(runs[t].m, x, w, b, runs[t].matrices, y)) return 1;
    double err = 0.0;
    for (int i = 0; i < N * K * HO * WO; ++i) err = fmax(err, fabs(y[i] - ref[i]));
    const int pass = err <= runs[t].tol * scale;
    printf("F(%d, 3) %s: max |y - direct| / max |direct| = %.3g %s\n", runs[t].m, runs[t].kind,
           err / scale, pass ? "ok" : "FAILED");
    status |= !pass;
  }
  return status;
}
