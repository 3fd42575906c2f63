/* One float32 layer through libmagma_wino (CUDA) on device memory, checked on the host against
 * a direct loop; tools/device_check.sh runs it on a GPU, CI only builds it (and runs it to see
 * the no-GPU path).
 *
 *   export PKG_CONFIG_PATH=$(python -m magma_wino --pkgconfig-dir)
 *   cc conv_layer_cuda.c $(pkg-config --cflags --libs magma_wino) -I$CUDA/include \
 *      -L$CUDA/lib64 -lcudart -lm -o conv_layer_cuda && ./conv_layer_cuda
 *
 * Exit status: 0 the layer matches, 1 it does not (or a call failed), 77 no usable GPU. */
#include <cuda_runtime_api.h>
#include <magma_wino.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 2, C = 16, K = 8, H = 20, W = 17, R = 3, P = 1 };
#define HO (H + 2 * P - R + 1)
#define WO (W + 2 * P - R + 1)

static int cuda_ok(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
  return err == cudaSuccess;
}

static int mw_ok(mw_status st, const char* what) {
  if (st != MW_STATUS_SUCCESS)
    fprintf(stderr, "%s: %s: %s\n", what, mw_status_name(st), mw_last_error_message());
  return st == MW_STATUS_SUCCESS;
}

int main(void) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    fprintf(stderr, "no usable CUDA GPU: nothing to run (%s)\n", mw_build_info());
    return 77;
  }
  mw_conv_desc d = {0};
  d.ndim = 2;
  d.m = 4;
  d.r = R;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  d.in_size[0] = H;
  d.in_size[1] = W;
  d.padding[0] = d.padding[1] = d.padding_end[0] = d.padding_end[1] = P;
  mw_conv_geometry g;
  if (!mw_ok(mw_conv_get_geometry(&d, MW_FLOAT32, &g), "geometry")) return 1;
  float* x = malloc(sizeof(float) * g.x_elems);
  float* w = malloc(sizeof(float) * g.w_elems);
  float* y = malloc(sizeof(float) * g.y_elems);
  unsigned s = 2024u;
  for (int64_t i = 0; i < g.x_elems; ++i)
    x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5f;
  for (int64_t i = 0; i < g.w_elems; ++i)
    w[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5f;
  void *dx, *dw, *dU, *dV, *dM, *dy;
  int good =
      cuda_ok(cudaMalloc(&dx, sizeof(float) * g.x_elems), "cudaMalloc x") &&
      cuda_ok(cudaMalloc(&dw, sizeof(float) * g.w_elems), "cudaMalloc w") &&
      cuda_ok(cudaMalloc(&dU, sizeof(float) * g.u_elems), "cudaMalloc U") &&
      cuda_ok(cudaMalloc(&dV, sizeof(float) * g.v_elems), "cudaMalloc V") &&
      cuda_ok(cudaMalloc(&dM, sizeof(float) * g.m_elems), "cudaMalloc M") &&
      cuda_ok(cudaMalloc(&dy, sizeof(float) * g.y_elems), "cudaMalloc y") &&
      cuda_ok(cudaMemcpy(dx, x, sizeof(float) * g.x_elems, cudaMemcpyHostToDevice), "copy x") &&
      cuda_ok(cudaMemcpy(dw, w, sizeof(float) * g.w_elems, cudaMemcpyHostToDevice), "copy w") &&
      mw_ok(mw_filter_transform(&d, MW_FLOAT32, dw, dU, NULL, 0), "filter transform") &&
      mw_ok(mw_input_transform(&d, MW_FLOAT32, dx, dV, MW_RELU_NONE, NULL, 0), "input transform") &&
      mw_ok(mw_gemm_batched(MW_FLOAT32, g.positions, K, g.num_tiles, C, dU, dV, dM, 0),
            "products") &&
      mw_ok(mw_output_transform(&d, MW_FLOAT32, dM, NULL, dy, NULL, 0), "output transform") &&
      cuda_ok(cudaMemcpy(y, dy, sizeof(float) * g.y_elems, cudaMemcpyDeviceToHost), "copy y");
  if (!good) return 1;
  double err = 0.0, scale = 0.0;
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      for (int i = 0; i < HO; ++i)
        for (int j = 0; j < WO; ++j) {
          double acc = 0.0;
          for (int c = 0; c < C; ++c)
            for (int u = 0; u < R; ++u)
              for (int v = 0; v < R; ++v) {
                const int h = i + u - P, ww = j + v - P;
                if (h >= 0 && h < H && ww >= 0 && ww < W)
                  acc +=
                      (double)x[((n * C + c) * H + h) * W + ww] * w[((k * C + c) * R + u) * R + v];
              }
          err = fmax(err, fabs(acc - y[((n * K + k) * HO + i) * WO + j]));
          scale = fmax(scale, fabs(acc));
        }
  /* magma_wino.accuracy.tolerance(float32, 4, 3, C * 9) = 2.0e-5 (docs/accuracy.md) */
  const int pass = err <= 2.0e-5 * scale;
  printf("magma_wino %d on %d GPU(s), F(4, 3) float32: max |y - direct| / max |direct| = %.3g %s\n",
         mw_get_version(), devices, err / scale, pass ? "ok" : "FAILED");
  return pass ? 0 : 1;
}
