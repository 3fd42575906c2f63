// The extern "C" layer: argument checks, geometry, dispatch on dtype and F(m, r).
//
// The same source is compiled by nvcc into the CUDA extension and by g++ (through
// kernels/emu/magma_wino_emu.cpp) into the emulator extension.  Nothing here launches a
// kernel before every size, pointer and descriptor field has been checked, and every
// index the kernels compute is known to fit in int32.
#include <atomic>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

#include "bsr_tc_batched.cuh"
#include "cook_toom.h"
#include "gemm_batched.cuh"
#include "gemm_tc.cuh"
#include "launch.cuh"
#include "magma_wino.h"
#include "sp24_tc_batched.cuh"
#include "spmm_batched.cuh"
#include "transform.cuh"
#include "transform_adjoint.cuh"
#include "winograd_fused.cuh"

namespace {

thread_local std::string g_last_error;

mw_status fail(mw_status status, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_last_error = buf;
  return status;
}

mw_status ok() {
  g_last_error.clear();
  return MW_STATUS_SUCCESS;
}

mw_status from_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return ok();
  const char* detail = mw::last_launch_error_message();
  if (detail == nullptr || detail[0] == '\0') detail = cudaGetErrorString(err);
  return fail(err == cudaErrorInvalidConfiguration || MW_EMULATOR ? MW_STATUS_LAUNCH_FAILED
                                                                  : MW_STATUS_CUDA_ERROR,
              "%s: %s", what, detail);
}

size_t dtype_size(mw_dtype dtype) { return dtype == MW_FLOAT64 ? sizeof(double) : sizeof(float); }

bool valid_dtype(mw_dtype dtype) { return dtype == MW_FLOAT32 || dtype == MW_FLOAT64; }

bool is_16bit(mw_dtype dtype) { return dtype == MW_FLOAT16 || dtype == MW_BFLOAT16; }

const char* dtype_name(mw_dtype dtype) {
  switch (dtype) {
    case MW_FLOAT32:
      return "MW_FLOAT32";
    case MW_FLOAT64:
      return "MW_FLOAT64";
    case MW_FLOAT16:
      return "MW_FLOAT16";
    case MW_BFLOAT16:
      return "MW_BFLOAT16";
  }
  return "not an mw_dtype";
}

// The error of an entry whose `dtype` (the type of its arrays and of the arithmetic) is not
// MW_FLOAT32 / MW_FLOAT64.  The 16-bit values are storage types of U and V only.
mw_status bad_dtype(mw_dtype dtype) {
  if (is_16bit(dtype))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "dtype %d (%s) is a 16-bit storage type of U and V only, not a compute dtype: pass "
                "MW_FLOAT32 or MW_FLOAT64 (16-bit U / V: mw_filter_transform_ex and "
                "mw_input_transform_ex with dtype MW_FLOAT32, products mw_gemm_batched_ex with "
                "dtype MW_FLOAT32 and MW_PRECISION_FP16 / MW_PRECISION_BF16)",
                int(dtype), dtype_name(dtype));
  return fail(MW_STATUS_INVALID_ARGUMENT, "dtype %d is not MW_FLOAT32 or MW_FLOAT64", int(dtype));
}

// Largest element count of any one array we index with int.
constexpr long long kMaxElements = INT_MAX;

// a * b * c <= kMaxElements, without signed overflow on the way (all factors >= 0).
bool fits(long long a, long long b, long long c = 1) {
  long long t;
  return !__builtin_mul_overflow(a, b, &t) && !__builtin_mul_overflow(t, c, &t) &&
         t <= kMaxElements;
}

#ifndef MW_CUDA_ARCH_STR
#define MW_CUDA_ARCH_STR "unknown"  // set by CMake from CMAKE_CUDA_ARCHITECTURES
#endif

// The F(m_i, r_i) of each of the ndim axes of a descriptor (mw_conv_desc.m_axes / r_axes, 0
// meaning m / r), validated: every alpha_i <= MW_MAX_ALPHA.
struct AxisTiles {
  int m[MW_MAX_NDIM], r[MW_MAX_NDIM], alpha[MW_MAX_NDIM];
  int alpha_max;
  bool rectangular;  // the axes' F(m_i, r_i) differ
};

mw_status axis_tiles(const mw_conv_desc* d, AxisTiles* at) {
  at->alpha_max = 0;
  at->rectangular = false;
  for (int i = 0; i < d->ndim; ++i) {
    if (d->m_axes[i] < 0 || d->r_axes[i] < 0)
      return fail(MW_STATUS_INVALID_ARGUMENT,
                  "desc.m_axes[%d] = %d, desc.r_axes[%d] = %d: must be >= 1, or 0 for m / r", i,
                  d->m_axes[i], i, d->r_axes[i]);
    at->m[i] = d->m_axes[i] != 0 ? d->m_axes[i] : d->m;
    at->r[i] = d->r_axes[i] != 0 ? d->r_axes[i] : d->r;
    at->alpha[i] = at->m[i] + at->r[i] - 1;
    if (at->alpha[i] > MW_MAX_ALPHA)
      return fail(MW_STATUS_UNSUPPORTED, "axis %d: F(%d, %d): alpha = m + r - 1 = %d exceeds %d", i,
                  at->m[i], at->r[i], at->alpha[i], MW_MAX_ALPHA);
    if (at->alpha[i] > at->alpha_max) at->alpha_max = at->alpha[i];
    if (at->m[i] != at->m[0] || at->r[i] != at->r[0]) at->rectangular = true;
  }
  return ok();
}

// The square tile of a descriptor: true and its F(*m, *r) when every axis has the same one
// (also when m_axes / r_axes spell out m and r), false for a rectangular tile.  For a
// descriptor make_geometry has accepted.
bool square_tile(const mw_conv_desc* d, int* m, int* r) {
  AxisTiles at;
  if (axis_tiles(d, &at) != MW_STATUS_SUCCESS || at.rectangular) return false;
  *m = at.m[0];
  *r = at.r[0];
  return true;
}

// The generic kernels' view of the device array `mats` (one Aᵀ, G, Bᵀ set, or one per axis for
// a rectangular tile; magma_wino.h).  For a descriptor make_geometry has accepted.
template <typename T>
mw::GenericMatrices<T> generic_matrices(const mw_conv_desc* d, const T* mats) {
  AxisTiles at;
  (void)axis_tiles(d, &at);
  return mw::split_matrices(mats, d->ndim, at.m, at.r, at.rectangular);
}

// Validate a descriptor and compute its geometry.  Returns success or the first problem.
mw_status make_geometry(const mw_conv_desc* d, mw_dtype dtype, mw_conv_geometry* geo,
                        mw::ConvGeometry* kg) {
  if (d == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "desc is NULL");
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  if (d->ndim != 2 && d->ndim != 3)
    return fail(MW_STATUS_INVALID_ARGUMENT, "desc.ndim must be 2 or 3, got %d", d->ndim);
  if (d->m < 1) return fail(MW_STATUS_INVALID_ARGUMENT, "desc.m must be >= 1, got %d", d->m);
  if (d->r < 1) return fail(MW_STATUS_INVALID_ARGUMENT, "desc.r must be >= 1, got %d", d->r);
  if (d->layout != MW_LAYOUT_NCHW && d->layout != MW_LAYOUT_NHWC)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "desc.layout must be MW_LAYOUT_NCHW (0) or MW_LAYOUT_NHWC (1), got %d", d->layout);
  AxisTiles at;
  if (mw_status st = axis_tiles(d, &at)) return st;
  const int alpha = at.alpha_max;
  if (d->batch < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT, "desc.batch must be >= 1, got %lld",
                (long long)d->batch);
  if (d->in_channels < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT, "desc.in_channels must be >= 1, got %lld",
                (long long)d->in_channels);
  if (d->out_channels < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT, "desc.out_channels must be >= 1, got %lld",
                (long long)d->out_channels);
  if (!fits(d->batch, d->in_channels) || !fits(d->batch, d->out_channels) ||
      !fits(d->out_channels, d->in_channels))
    return fail(MW_STATUS_UNSUPPORTED,
                "layer too large: arrays of 2^31 or more elements are not supported");
  mw_conv_geometry g{};
  g.alpha = alpha;
  g.rectangular = at.rectangular ? 1 : 0;
  g.positions = 1;
  long long tiles = d->batch, in_elems = d->batch * d->in_channels,
            out_elems = d->batch * d->out_channels;
  for (int a = 0; a < MW_MAX_NDIM; ++a) {
    g.out_size[a] = g.tiles[a] = 1;
  }
  const int first = MW_MAX_NDIM - d->ndim;  // 2D uses axes 1, 2 (H, W); axis 0 is depth
  for (int i = 0; i < d->ndim; ++i) {
    const long long in = d->in_size[i], lo = d->padding[i], hi = d->padding_end[i];
    if (in < 1)
      return fail(MW_STATUS_INVALID_ARGUMENT, "desc.in_size[%d] must be >= 1, got %lld", i, in);
    if (in > kMaxElements)
      return fail(MW_STATUS_UNSUPPORTED, "spatial axis %d: size %lld too large", i, in);
    if (lo < 0)
      return fail(MW_STATUS_INVALID_ARGUMENT, "desc.padding[%d] = %lld: must be >= 0", i, lo);
    if (hi < 0)
      return fail(MW_STATUS_INVALID_ARGUMENT, "desc.padding_end[%d] = %lld: must be >= 0", i, hi);
    // The padded extent (and every window coordinate of the kernels, which stay within it plus
    // one tile) must fit the kernels' 32-bit index math.
    if (lo > kMaxElements || hi > kMaxElements || in + lo + hi > kMaxElements - 2 * MW_MAX_ALPHA)
      return fail(MW_STATUS_UNSUPPORTED,
                  "spatial axis %d: input %lld with padding %lld + %lld is too large", i, in, lo,
                  hi);
    const int m_i = at.m[i], r_i = at.r[i];
    const long long out = in + lo + hi - r_i + 1;
    if (out < 1)
      return fail(MW_STATUS_INVALID_ARGUMENT,
                  "spatial axis %d: input %lld with padding %lld + %lld (desc.padding, "
                  "desc.padding_end) is smaller than the filter %d",
                  i, in, lo, hi, r_i);
    if (in > kMaxElements || out > kMaxElements)
      return fail(MW_STATUS_UNSUPPORTED, "spatial axis %d: size %lld too large", i, in);
    g.out_size[i] = out;
    g.tiles[i] = (out + m_i - 1) / m_i;
    g.alpha_axes[i] = at.alpha[i];
    if (!fits(tiles, g.tiles[i]) || !fits(in_elems, in) || !fits(out_elems, out))
      return fail(MW_STATUS_UNSUPPORTED,
                  "layer too large: arrays of 2^31 or more elements are not supported");
    tiles *= g.tiles[i];
    in_elems *= in;
    out_elems *= out;
    g.positions *= at.alpha[i];
    if (tiles > kMaxElements || in_elems > kMaxElements || out_elems > kMaxElements)
      return fail(MW_STATUS_UNSUPPORTED,
                  "layer too large: arrays of 2^31 or more elements are not supported");
  }
  g.num_tiles = tiles;
  if (!fits(g.positions, d->in_channels, tiles) || !fits(g.positions, d->out_channels, tiles) ||
      !fits(g.positions, d->out_channels, d->in_channels))
    return fail(MW_STATUS_UNSUPPORTED,
                "layer too large: the Winograd-domain arrays (alpha^nd x C x P, alpha^nd x K x P "
                "with P = %lld tiles) must have fewer than 2^31 elements; split the batch",
                tiles);
  g.workspace_bytes =
      static_cast<size_t>(g.positions * (d->in_channels + d->out_channels) * tiles) *
      dtype_size(dtype);  // both products < 2^31: checked above
  g.x_elems = in_elems;
  g.y_elems = out_elems;
  g.w_elems = d->out_channels * d->in_channels;
  for (int i = 0; i < d->ndim; ++i) g.w_elems *= at.r[i];  // <= 16^3 taps: no overflow
  g.u_elems = g.positions * d->out_channels * d->in_channels;
  g.v_elems = g.positions * d->in_channels * tiles;
  g.m_elems = g.positions * d->out_channels * tiles;
  g.matrices_elems = 0;
  for (int i = 0; i < (at.rectangular ? d->ndim : 1); ++i)
    g.matrices_elems += at.m[i] * at.alpha[i] + at.alpha[i] * at.r[i] + at.alpha[i] * at.alpha[i];
  // The sparse formats of U (docs/sparse.md): CSR row offsets per position, and the block-sparse
  // (16 x 8 blocks) row offsets and its largest block count (every block kept).
  const int64_t block_rows = (d->out_channels + 15) / 16, block_cols = (d->in_channels + 7) / 8;
  g.csr_row_ptr_elems = g.positions * (d->out_channels + 1);
  g.bsr_row_ptr_elems = g.positions * (block_rows + 1);
  g.bsr_max_blocks = g.positions * block_rows * block_cols;
  if (geo != nullptr) *geo = g;
  if (kg != nullptr) {
    kg->N = static_cast<int>(d->batch);
    kg->C = static_cast<int>(d->in_channels);
    kg->K = static_cast<int>(d->out_channels);
    for (int a = 0; a < MW_MAX_NDIM; ++a) {
      kg->in[a] = 1;
      kg->out[a] = 1;
      kg->pad[a] = 0;
      kg->tiles[a] = 1;
    }
    for (int i = 0; i < d->ndim; ++i) {
      kg->in[first + i] = static_cast<int>(d->in_size[i]);
      kg->out[first + i] = static_cast<int>(g.out_size[i]);
      kg->pad[first + i] = static_cast<int>(d->padding[i]);
      kg->tiles[first + i] = static_cast<int>(g.tiles[i]);
    }
    kg->P = static_cast<int>(tiles);
    kg->channels_last = d->layout == MW_LAYOUT_NHWC ? 1 : 0;
  }
  return ok();
}

bool specialized(int ndim, int m, int r) {
  return ndim == 2 ? mw::SpecializedTiles2d::contains(m, r)
                   : mw::SpecializedTiles3d::contains(m, r);
}

// Run f(ndim_constant, Tile<m, r>{}) for the specialised tile of (ndim, m, r); false if
// there is none.  Each dimension instantiates only the tiles of its own list.
template <typename F>
bool dispatch_tile(int ndim, int m, int r, F&& f) {
  if (ndim == 2)
    return mw::SpecializedTiles2d::dispatch(
        m, r, [&](auto tile) { f(std::integral_constant<int, 2>{}, tile); });
  return mw::SpecializedTiles3d::dispatch(
      m, r, [&](auto tile) { f(std::integral_constant<int, 3>{}, tile); });
}

// The line tiles: a 2D rectangular tile F(1×m, 1×r) (the line along W: kernel axis 2) or
// F(m×1, r×1) (along H: axis 1) whose F(m, r) has specialised coefficients.  Returns the axis
// and sets *m, *r; 0 for every other tile.  For a descriptor make_geometry has accepted.
int line_axis(const mw_conv_desc* d, int* m, int* r) {
  AxisTiles at;
  if (d->ndim != 2 || axis_tiles(d, &at) != MW_STATUS_SUCCESS || !at.rectangular) return 0;
  for (int i = 0; i < 2; ++i) {
    const int other = 1 - i;
    if (at.m[other] == 1 && at.r[other] == 1 &&
        mw::SpecializedTiles2d::contains(at.m[i], at.r[i])) {
      *m = at.m[i];
      *r = at.r[i];
      return i + 1;  // descriptor axis 0 (H) is the kernels' axis 1
    }
  }
  return 0;
}

// Run f(axis_constant, Tile<m, r>{}) for the line tile of d; false if it is none.
template <typename F>
bool dispatch_line(const mw_conv_desc* d, F&& f) {
  int m = 0, r = 0;
  const int axis = line_axis(d, &m, &r);
  if (axis == 0) return false;
  return mw::SpecializedTiles2d::dispatch(m, r, [&](auto tile) {
    if (axis == 1)
      f(std::integral_constant<int, 1>{}, tile);
    else
      f(std::integral_constant<int, 2>{}, tile);
  });
}

// T: the compute type of w / x, the matrices and the arithmetic; TS: the storage type of U / V.
template <typename T, typename TS>
cudaError_t filter_transform_t(const mw_conv_desc* d, const mw::ConvGeometry& g, const T* w, TS* U,
                               const T* mats, cudaStream_t s) {
  cudaError_t err = cudaSuccess;
  int sm = 0, sr = 0;
  if (mats == nullptr && square_tile(d, &sm, &sr) &&
      dispatch_tile(d->ndim, sm, sr, [&](auto nd, auto tile) {
        using Tl = decltype(tile);
        err = mw::filter_transform_launch<T, TS, decltype(nd)::value, Tl::m, Tl::r>(g, w, U, s);
      }))
    return err;
  if (mats == nullptr && dispatch_line(d, [&](auto, auto tile) {
        using Tl = decltype(tile);
        err = mw::filter_transform_line_launch<T, TS, Tl::m, Tl::r>(g, w, U, s);
      }))
    return err;
  return mw::filter_transform_generic_launch<T, TS>(d->ndim, g, generic_matrices(d, mats), w, U, s);
}

template <typename T, typename TS>
cudaError_t input_transform_t(const mw_conv_desc* d, const mw::ConvGeometry& g, const T* x, TS* V,
                              int relu, const T* mats, cudaStream_t s) {
  cudaError_t err = cudaSuccess;
  int sm = 0, sr = 0;
  if (mats == nullptr && square_tile(d, &sm, &sr) &&
      dispatch_tile(d->ndim, sm, sr, [&](auto nd, auto tile) {
        using Tl = decltype(tile);
        err =
            mw::input_transform_launch<T, TS, decltype(nd)::value, Tl::m, Tl::r>(g, x, V, relu, s);
      }))
    return err;
  if (mats == nullptr && dispatch_line(d, [&](auto ax, auto tile) {
        using Tl = decltype(tile);
        err = mw::input_transform_line_launch<T, TS, Tl::m, Tl::r, decltype(ax)::value>(g, x, V,
                                                                                        relu, s);
      }))
    return err;
  return mw::input_transform_generic_launch<T, TS>(d->ndim, g, generic_matrices(d, mats), x, V,
                                                   relu, s);
}

// Calls f(static_cast<T*>(nullptr), static_cast<TS*>(nullptr)) -- typed null pointers as type
// tags; f casts the real pointers -- for the (dtype, storage dtype) pair: (float, float),
// (double, double), (float, __half), (float, __nv_bfloat16).  check_storage_dtype() has run.
template <typename F>
cudaError_t dispatch_storage(mw_dtype dtype, mw_dtype storage, F&& f) {
  if (dtype == MW_FLOAT64) return f(static_cast<double*>(nullptr), static_cast<double*>(nullptr));
  if (storage == MW_FLOAT16) return f(static_cast<float*>(nullptr), static_cast<__half*>(nullptr));
  if (storage == MW_BFLOAT16)
    return f(static_cast<float*>(nullptr), static_cast<__nv_bfloat16*>(nullptr));
  return f(static_cast<float*>(nullptr), static_cast<float*>(nullptr));
}

// `storage` (u_dtype / v_dtype of the _ex entries): dtype itself, or a 16-bit type with dtype
// MW_FLOAT32.
mw_status check_storage_dtype(mw_dtype dtype, mw_dtype storage, const char* name) {
  if (storage == dtype) return ok();
  if (!is_16bit(storage) && !valid_dtype(storage))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "%s %d is not an mw_dtype (MW_FLOAT32, MW_FLOAT64, MW_FLOAT16, MW_BFLOAT16)", name,
                int(storage));
  if (!is_16bit(storage))
    return fail(MW_STATUS_UNSUPPORTED,
                "%s %s with dtype %s: the storage type is dtype or a 16-bit "
                "type (MW_FLOAT16, MW_BFLOAT16, with dtype MW_FLOAT32)",
                name, dtype_name(storage), dtype_name(dtype));
  if (dtype != MW_FLOAT32)
    return fail(MW_STATUS_UNSUPPORTED,
                "%s %s needs dtype MW_FLOAT32 (16-bit storage is rounded from float32), got %s",
                name, dtype_name(storage), dtype_name(dtype));
  return ok();
}

template <typename T>
cudaError_t output_transform_t(const mw_conv_desc* d, const mw::ConvGeometry& g, const T* Mw,
                               const T* bias, T* y, const T* mats, cudaStream_t s) {
  cudaError_t err = cudaSuccess;
  int sm = 0, sr = 0;
  if (mats == nullptr && square_tile(d, &sm, &sr) &&
      dispatch_tile(d->ndim, sm, sr, [&](auto nd, auto tile) {
        using Tl = decltype(tile);
        err = mw::output_transform_launch<T, decltype(nd)::value, Tl::m, Tl::r>(g, Mw, bias, y, s);
      }))
    return err;
  if (mats == nullptr && dispatch_line(d, [&](auto ax, auto tile) {
        using Tl = decltype(tile);
        err = mw::output_transform_line_launch<T, Tl::m, Tl::r, decltype(ax)::value>(g, Mw, bias, y,
                                                                                     s);
      }))
    return err;
  return mw::output_transform_generic_launch<T>(d->ndim, g, generic_matrices(d, mats), Mw, bias, y,
                                                s);
}

mw_status check_transform_common(const mw_conv_desc* d, const void* matrices) {
  int m = 0, r = 0;
  if (matrices == nullptr && line_axis(d, &m, &r) != 0) return ok();  // a specialised line tile
  if (matrices == nullptr && !square_tile(d, &m, &r))
    return fail(MW_STATUS_UNSUPPORTED,
                "a rectangular tile (desc.m_axes, desc.r_axes) other than the 2D lines "
                "F(1 x m, 1 x r) / F(m x 1, r x 1) of a specialised F(m, r) has no specialised "
                "kernel: pass the transform matrices, one set per axis (the generic kernels run "
                "it)");
  if (matrices == nullptr && !specialized(d->ndim, m, r))
    return fail(
        MW_STATUS_UNSUPPORTED,
        "F(%d, %d) in %dD has no specialised kernel in this build: pass the transform matrices "
        "(the generic kernels run any F(m, r))",
        m, r, d->ndim);
  return ok();
}

// The adjoint transforms (transform_adjoint.cuh).  The same checks as the forward entries, in
// the same order (descriptor and dtype, pointers); matrices are required: there are only
// generic adjoint kernels, so NULL (the forward's "specialised kernel" request) is refused
// even for the F(m, r) that have a specialised forward kernel.
mw_status check_adjoint_matrices(const void* matrices) {
  if (matrices == nullptr)
    return fail(
        MW_STATUS_INVALID_ARGUMENT,
        "matrices is NULL: the adjoint transforms have no specialised kernels, pass the "
        "transform matrices (A^T, G, B^T back to back, as for the generic forward kernels)");
  return ok();
}

// f(typed null pointer) for dtype (checked by make_geometry: MW_FLOAT32 or MW_FLOAT64).
template <typename F>
cudaError_t dispatch_dtype(mw_dtype dtype, F&& f) {
  if (dtype == MW_FLOAT64) return f(static_cast<double*>(nullptr));
  return f(static_cast<float*>(nullptr));
}

cudaStream_t as_stream(mw_stream s) { return reinterpret_cast<cudaStream_t>(s); }

// One adjoint entry: descriptor and dtype, the two arrays (named by `arrays` when NULL), the
// matrices, then launch(ndim, g, matrices, in, out, stream) for the dtype's element type.
template <typename Launch>
mw_status adjoint_entry(const mw_conv_desc* desc, mw_dtype dtype, const void* in, void* out,
                        const char* arrays, const void* matrices, mw_stream stream,
                        const char* what, Launch&& launch) {
  mw::ConvGeometry g;
  if (mw_status st = make_geometry(desc, dtype, nullptr, &g)) return st;
  if (in == nullptr || out == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "%s must not be NULL", arrays);
  if (mw_status st = check_adjoint_matrices(matrices)) return st;
  const cudaError_t err = dispatch_dtype(dtype, [&](auto* t) {
    using T = std::remove_pointer_t<decltype(t)>;
    return launch(desc->ndim, g, generic_matrices(desc, static_cast<const T*>(matrices)),
                  static_cast<const T*>(in), static_cast<T*>(out), as_stream(stream));
  });
  return from_cuda(err, what);
}

}  // namespace

extern "C" {

mw_status mw_conv_get_geometry(const mw_conv_desc* desc, mw_dtype dtype,
                               mw_conv_geometry* geometry) {
  if (geometry == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "geometry is NULL");
  return make_geometry(desc, dtype, geometry, nullptr);
}

int mw_has_specialized_transform(int ndim, int m, int r) {
  return (ndim == 2 || ndim == 3) && specialized(ndim, m, r) ? 1 : 0;
}

int mw_has_specialized_tile(const mw_conv_desc* desc) {
  int m = 0, r = 0;
  if (desc == nullptr || make_geometry(desc, MW_FLOAT32, nullptr, nullptr) != MW_STATUS_SUCCESS)
    return 0;
  if (line_axis(desc, &m, &r) != 0) return 1;
  return square_tile(desc, &m, &r) && specialized(desc->ndim, m, r) ? 1 : 0;
}

mw_status mw_winograd_matrices(int m, int r, const int64_t* points_num, const int64_t* points_den,
                               mw_dtype dtype, void* matrices) {
  namespace ct = mw::cook_toom;
  if (m < 1 || r < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT, "m and r must be >= 1, got m = %d, r = %d", m, r);
  if (dtype != MW_FLOAT32 && dtype != MW_FLOAT64)
    return fail(MW_STATUS_INVALID_ARGUMENT, "dtype must be MW_FLOAT32 or MW_FLOAT64, got %d",
                int(dtype));
  if (matrices == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "matrices must not be NULL");
  if ((points_num == nullptr) != (points_den == nullptr))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "points_num and points_den: give both (the points) or neither (the defaults)");
  if (m + r - 1 > ct::kMaxAlpha)
    return fail(MW_STATUS_UNSUPPORTED,
                "F(m=%d, r=%d) has tile size alpha = m + r - 1 = %d; at most %d is supported", m, r,
                m + r - 1, ct::kMaxAlpha);
  const int alpha = m + r - 1;
  std::vector<ct::Rational> pts;
  if (points_num == nullptr) {
    pts = ct::default_points(m, r);
  } else {
    for (int i = 0; i < alpha - 1; ++i) {
      if (points_den[i] <= 0)
        return fail(MW_STATUS_INVALID_ARGUMENT, "points_den[%d] = %lld: must be > 0", i,
                    (long long)points_den[i]);
      pts.push_back(ct::make(points_num[i], points_den[i]));
      for (int j = 0; j < i; ++j)
        if (pts[j].num == pts[i].num && pts[j].den == pts[i].den)
          return fail(MW_STATUS_INVALID_ARGUMENT,
                      "points must be distinct: points %d and %d are equal", j, i);
    }
  }
  ct::Matrices mats;
  if (!ct::build(m, r, pts, &mats))
    return fail(MW_STATUS_UNSUPPORTED,
                "F(%d, %d): these points overflow the exact 128-bit arithmetic; use smaller "
                "numerators and denominators",
                m, r);
  size_t k = 0;
  for (const auto* part : {&mats.at, &mats.g, &mats.bt})
    for (const ct::Rational& v : *part) {
      const double d = ct::to_double(v);
      if (dtype == MW_FLOAT64)
        static_cast<double*>(matrices)[k++] = d;
      else
        static_cast<float*>(matrices)[k++] = static_cast<float>(d);
    }
  return MW_STATUS_SUCCESS;
}

mw_status mw_filter_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype u_dtype,
                                 const void* w, void* U, const void* matrices, mw_stream stream) {
  mw::ConvGeometry g;
  if (mw_status st = make_geometry(desc, dtype, nullptr, &g)) return st;
  if (mw_status st = check_storage_dtype(dtype, u_dtype, "u_dtype")) return st;
  if (w == nullptr || U == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "w and U must not be NULL");
  if (mw_status st = check_transform_common(desc, matrices)) return st;
  const cudaError_t err = dispatch_storage(dtype, u_dtype, [&](auto* t, auto* ts) {
    using T = std::remove_pointer_t<decltype(t)>;
    using TS = std::remove_pointer_t<decltype(ts)>;
    return filter_transform_t<T, TS>(desc, g, static_cast<const T*>(w), static_cast<TS*>(U),
                                     static_cast<const T*>(matrices), as_stream(stream));
  });
  return from_cuda(err, "filter transform");
}

mw_status mw_filter_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* w, void* U,
                              const void* matrices, mw_stream stream) {
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  return mw_filter_transform_ex(desc, dtype, dtype, w, U, matrices, stream);
}

mw_status mw_input_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype v_dtype,
                                const void* x, void* V, mw_relu relu, const void* matrices,
                                mw_stream stream) {
  mw::ConvGeometry g;
  if (mw_status st = make_geometry(desc, dtype, nullptr, &g)) return st;
  if (mw_status st = check_storage_dtype(dtype, v_dtype, "v_dtype")) return st;
  if (x == nullptr || V == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "x and V must not be NULL");
  if (relu != MW_RELU_NONE && relu != MW_RELU_SPATIAL && relu != MW_RELU_WINOGRAD)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "relu must be MW_RELU_NONE, MW_RELU_SPATIAL or MW_RELU_WINOGRAD, got %d", relu);
  if (mw_status st = check_transform_common(desc, matrices)) return st;
  const cudaError_t err = dispatch_storage(dtype, v_dtype, [&](auto* t, auto* ts) {
    using T = std::remove_pointer_t<decltype(t)>;
    using TS = std::remove_pointer_t<decltype(ts)>;
    return input_transform_t<T, TS>(desc, g, static_cast<const T*>(x), static_cast<TS*>(V), relu,
                                    static_cast<const T*>(matrices), as_stream(stream));
  });
  return from_cuda(err, "input transform");
}

mw_status mw_input_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* x, void* V,
                             mw_relu relu, const void* matrices, mw_stream stream) {
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  return mw_input_transform_ex(desc, dtype, dtype, x, V, relu, matrices, stream);
}

mw_status mw_output_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* M,
                              const void* bias, void* y, const void* matrices, mw_stream stream) {
  mw::ConvGeometry g;
  if (mw_status st = make_geometry(desc, dtype, nullptr, &g)) return st;
  if (M == nullptr || y == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "M and y must not be NULL");
  if (mw_status st = check_transform_common(desc, matrices)) return st;
  const cudaError_t err =
      dtype == MW_FLOAT32
          ? output_transform_t<float>(desc, g, static_cast<const float*>(M),
                                      static_cast<const float*>(bias), static_cast<float*>(y),
                                      static_cast<const float*>(matrices), as_stream(stream))
          : output_transform_t<double>(desc, g, static_cast<const double*>(M),
                                       static_cast<const double*>(bias), static_cast<double*>(y),
                                       static_cast<const double*>(matrices), as_stream(stream));
  return from_cuda(err, "output transform");
}

mw_status mw_output_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dy,
                                      void* dM, const void* matrices, mw_stream stream) {
  return adjoint_entry(desc, dtype, dy, dM, "dy and dM", matrices, stream,
                       "output transform adjoint",
                       [](auto&&... a) { return mw::output_transform_adjoint_launch(a...); });
}

mw_status mw_input_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dV,
                                     void* dx, const void* matrices, mw_stream stream) {
  return adjoint_entry(desc, dtype, dV, dx, "dV and dx", matrices, stream,
                       "input transform adjoint",
                       [](auto&&... a) { return mw::input_transform_adjoint_launch(a...); });
}

mw_status mw_filter_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dU,
                                      void* dw, const void* matrices, mw_stream stream) {
  return adjoint_entry(desc, dtype, dU, dw, "dU and dw", matrices, stream,
                       "filter transform adjoint",
                       [](auto&&... a) { return mw::filter_transform_adjoint_launch(a...); });
}

namespace {

// What both dense batched products check: sizes >= 1, no NULL operand, arrays of fewer than
// 2^31 elements (the kernels index them in int32).
mw_status check_dense_product(int64_t batch, int64_t m, int64_t n, int64_t k, const void* A,
                              const void* B, const void* C) {
  if (batch < 1 || m < 1 || n < 1 || k < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "batch, m, n, k must be >= 1, got %lld, %lld, %lld, %lld", (long long)batch,
                (long long)m, (long long)n, (long long)k);
  if (A == nullptr || B == nullptr || C == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "A, B and C must not be NULL");
  if (!fits(batch, m, k) || !fits(batch, k, n) || !fits(batch, m, n))
    return fail(MW_STATUS_UNSUPPORTED,
                "batched product too large: arrays of 2^31 or more elements");
  return MW_STATUS_SUCCESS;
}

}  // namespace

mw_status mw_gemm_batched(mw_dtype dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                          const void* A, const void* B, void* C, mw_stream stream) {
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  if (const mw_status st = check_dense_product(batch, m, n, k, A, B, C); st != MW_STATUS_SUCCESS)
    return st;
  const cudaError_t err =
      dtype == MW_FLOAT32
          ? mw::gemm_batched<float>(int(batch), int(m), int(n), int(k),
                                    static_cast<const float*>(A), static_cast<const float*>(B),
                                    static_cast<float*>(C), as_stream(stream))
          : mw::gemm_batched<double>(int(batch), int(m), int(n), int(k),
                                     static_cast<const double*>(A), static_cast<const double*>(B),
                                     static_cast<double*>(C), as_stream(stream));
  return from_cuda(err, "batched product");
}

namespace {

// Where MW_PRECISION_FP64 runs: on the tensor cores (DMMA, gemm_tc.cuh) when the device has them
// for float64 -- compute capability 8.0 and newer, and the emulator, which models such a device
// (as it does for TF32 and cp.async) -- else on the SIMT DFMA kernels of gemm_batched.cuh.
bool fp64_tensor_cores() {
#if MW_EMULATOR
  return true;
#else
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: keep it from surfacing as a later launch's error
    return false;
  }
  return major >= 8;
#endif
}

// The dtype / precision pair of the _ex products; *name: the precision's MW_PRECISION_* name.
mw_status check_precision_pair(mw_dtype dtype, mw_precision precision, const char** name) {
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  if (int(precision) < MW_PRECISION_FP32 || int(precision) > MW_PRECISION_FP64)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "precision %d is not an mw_precision (MW_PRECISION_FP32 .. MW_PRECISION_FP64)",
                precision);
  static const char* const kNames[] = {"MW_PRECISION_FP32",   "MW_PRECISION_TF32",
                                       "MW_PRECISION_TF32X3", "MW_PRECISION_BF16",
                                       "MW_PRECISION_FP16",   "MW_PRECISION_FP64"};
  *name = kNames[int(precision)];
  if (precision == MW_PRECISION_FP64 && dtype != MW_FLOAT64)
    return fail(MW_STATUS_UNSUPPORTED, "precision MW_PRECISION_FP64 needs dtype MW_FLOAT64");
  if (precision != MW_PRECISION_FP64 && dtype != MW_FLOAT32)
    return fail(MW_STATUS_UNSUPPORTED, "precision %s needs dtype MW_FLOAT32 (%s), got MW_FLOAT64",
                *name,
                precision == MW_PRECISION_BF16 || precision == MW_PRECISION_FP16
                    ? "the type of C and of the accumulation; A and B are 16-bit"
                    : "float32 in memory");
  return MW_STATUS_SUCCESS;
}

// Whether the pair runs gemm_tc.cuh (else mw_gemm_batched's SIMT kernels).
bool on_tensor_cores(mw_precision precision) {
  return precision != MW_PRECISION_FP32 && (precision != MW_PRECISION_FP64 || fp64_tensor_cores());
}

// SMs of the current device (cudaDevAttrMultiProcessorCount; the emulator's fixed count), cached
// per device: the split-K rule needs it on every call and the query is not free.  A failed query
// counts as 1 SM (the rule then splits less, never wrongly).
int sm_count() {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  if (device >= 0 && device < kCached)
    if (const int c = cache[device].load(std::memory_order_relaxed); c > 0) return c;
  int count = 0;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      count < 1) {
    (void)cudaGetLastError();
    return 1;
  }
  if (device >= 0 && device < kCached) cache[device].store(count, std::memory_order_relaxed);
  return count;
}

mw::GemmTcPlan tc_plan(mw_precision precision, int64_t batch, int64_t m, int64_t n, int64_t k) {
  const int sms = sm_count();
  switch (precision) {
    case MW_PRECISION_TF32:
      return mw::gemm_tc_plan<mw::TcPrecision::kTf32>(batch, m, n, k, sms);
    case MW_PRECISION_TF32X3:
      return mw::gemm_tc_plan<mw::TcPrecision::kTf32x3>(batch, m, n, k, sms);
    case MW_PRECISION_FP16:
      return mw::gemm_tc_plan<mw::TcPrecision::kFp16>(batch, m, n, k, sms);
    case MW_PRECISION_BF16:
      return mw::gemm_tc_plan<mw::TcPrecision::kBf16>(batch, m, n, k, sms);
    default:  // MW_PRECISION_FP64 on DMMA
      return mw::gemm_tc_plan<mw::TcPrecision::kFp64>(batch, m, n, k, sms);
  }
}

}  // namespace

mw_status mw_gemm_batched_ex_plan(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t m,
                                  int64_t n, int64_t k, mw_gemm_plan* plan) {
  const char* name = nullptr;
  if (const mw_status st = check_precision_pair(dtype, precision, &name)) return st;
  if (plan == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "plan is NULL");
  // The sizes as check_dense_product checks them (a non-NULL stand-in for the operands).
  static const char kAny = 0;
  if (const mw_status st = check_dense_product(batch, m, n, k, &kAny, &kAny, &kAny)) return st;
  *plan = mw_gemm_plan{};
  plan->sm_count = sm_count();
  if (!on_tensor_cores(precision)) {
    plan->config = "gemm_batched";  // the SIMT kernels (their own tile table): never split
    plan->splits = 1;
    return ok();
  }
  const mw::GemmTcPlan p = tc_plan(precision, batch, m, n, k);
  plan->config = p.config;
  plan->block_m = p.block_m, plan->block_n = p.block_n, plan->block_k = p.block_k;
  plan->threads = p.threads;
  plan->blocks = p.blocks;
  plan->splits = p.splits;
  plan->slices_per_split = p.slices_per_split;
  plan->workspace_bytes = p.workspace_bytes;
  return ok();
}

mw_status mw_gemm_batched_ex_workspace(mw_dtype dtype, mw_precision precision, int64_t batch,
                                       int64_t m, int64_t n, int64_t k, size_t* bytes) {
  if (bytes == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "bytes is NULL");
  mw_gemm_plan plan;
  if (const mw_status st = mw_gemm_batched_ex_plan(dtype, precision, batch, m, n, k, &plan))
    return st;
  *bytes = plan.workspace_bytes;
  return ok();
}

mw_status mw_gemm_batched_ex_ws(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t m,
                                int64_t n, int64_t k, const void* A, const void* B, void* C,
                                void* workspace, size_t workspace_bytes, mw_stream stream) {
  const char* name = nullptr;
  if (const mw_status st = check_precision_pair(dtype, precision, &name)) return st;
  if (!on_tensor_cores(precision))
    return mw_gemm_batched(dtype, batch, m, n, k, A, B, C, stream);  // no split-K: ignored
  if (const mw_status st = check_dense_product(batch, m, n, k, A, B, C); st != MW_STATUS_SUCCESS)
    return st;
  const size_t acc = precision == MW_PRECISION_FP64 ? sizeof(double) : sizeof(float);
  if (workspace != nullptr && reinterpret_cast<uintptr_t>(workspace) % acc != 0)
    return fail(MW_STATUS_INVALID_ARGUMENT, "workspace must be %zu-byte aligned (%s partials)", acc,
                acc == 8 ? "float64" : "float32");
  const int sms = sm_count();
  if (precision == MW_PRECISION_FP64) {
    if (reinterpret_cast<uintptr_t>(A) % sizeof(double) != 0 ||
        reinterpret_cast<uintptr_t>(B) % sizeof(double) != 0 ||
        reinterpret_cast<uintptr_t>(C) % sizeof(double) != 0)
      return fail(MW_STATUS_INVALID_ARGUMENT, "A, B and C must be 8-byte aligned (float64 arrays)");
    return from_cuda(mw::gemm_tc_batched<mw::TcPrecision::kFp64>(
                         int(batch), int(m), int(n), int(k), static_cast<const double*>(A),
                         static_cast<const double*>(B), static_cast<double*>(C), workspace,
                         workspace_bytes, sms, as_stream(stream)),
                     "batched product (FP64, DMMA)");
  }
  const bool half = precision == MW_PRECISION_BF16 || precision == MW_PRECISION_FP16;
  const size_t ab = half ? 2 : sizeof(float);
  if (reinterpret_cast<uintptr_t>(A) % ab != 0 || reinterpret_cast<uintptr_t>(B) % ab != 0 ||
      reinterpret_cast<uintptr_t>(C) % sizeof(float) != 0)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                half ? "A and B must be 2-byte aligned (16-bit arrays), C 4-byte aligned (float32)"
                     : "A, B and C must be 4-byte aligned (float32 arrays)");
  float* c = static_cast<float*>(C);
  const int bt = int(batch), mm = int(m), nn = int(n), kk = int(k);
  cudaError_t err;
  switch (precision) {
    case MW_PRECISION_TF32:
      err = mw::gemm_tc_batched<mw::TcPrecision::kTf32>(
          bt, mm, nn, kk, static_cast<const float*>(A), static_cast<const float*>(B), c, workspace,
          workspace_bytes, sms, as_stream(stream));
      break;
    case MW_PRECISION_TF32X3:
      err = mw::gemm_tc_batched<mw::TcPrecision::kTf32x3>(
          bt, mm, nn, kk, static_cast<const float*>(A), static_cast<const float*>(B), c, workspace,
          workspace_bytes, sms, as_stream(stream));
      break;
    case MW_PRECISION_FP16:
      err = mw::gemm_tc_batched<mw::TcPrecision::kFp16>(
          bt, mm, nn, kk, static_cast<const __half*>(A), static_cast<const __half*>(B), c,
          workspace, workspace_bytes, sms, as_stream(stream));
      break;
    default:  // MW_PRECISION_BF16
      err = mw::gemm_tc_batched<mw::TcPrecision::kBf16>(
          bt, mm, nn, kk, static_cast<const __nv_bfloat16*>(A),
          static_cast<const __nv_bfloat16*>(B), c, workspace, workspace_bytes, sms,
          as_stream(stream));
      break;
  }
  char what[64];
  std::snprintf(what, sizeof what, "batched product (%s)", name + 13);  // after "MW_PRECISION_"
  return from_cuda(err, what);
}

// No workspace: never split (the configuration is the one the plan picks; C bitwise the same as
// mw_gemm_batched_ex_ws with a too-small workspace).
mw_status mw_gemm_batched_ex(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t m,
                             int64_t n, int64_t k, const void* A, const void* B, void* C,
                             mw_stream stream) {
  return mw_gemm_batched_ex_ws(dtype, precision, batch, m, n, k, A, B, C, nullptr, 0, stream);
}

mw_status mw_spmm_batched_ex(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                             const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                             int64_t nnz, const int32_t* row_order, unsigned flags, const void* B,
                             void* C, mw_stream stream) {
  if (!valid_dtype(dtype)) return bad_dtype(dtype);
  if (batch < 1 || rows < 1 || cols < 1 || n < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "batch, rows, cols, n must be >= 1, got %lld, %lld, %lld, %lld", (long long)batch,
                (long long)rows, (long long)cols, (long long)n);
  // Repeated columns are allowed (they add up), so nnz may exceed batch * rows * cols; the
  // kernel clamps every row range into [0, nnz].
  if (nnz < 0 || nnz > kMaxElements)
    return fail(MW_STATUS_INVALID_ARGUMENT, "nnz = %lld must be in [0, 2^31 - 1]", (long long)nnz);
  if (row_ptr == nullptr || B == nullptr || C == nullptr ||
      (nnz > 0 && (col_idx == nullptr || values == nullptr)))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "row_ptr, B, C (and col_idx, values when nnz > 0) must not be NULL");
  if ((flags & ~unsigned(MW_SPMM_OFFSETS64 | MW_SPMM_SCALAR)) != 0)
    return fail(MW_STATUS_INVALID_ARGUMENT, "flags = 0x%x: unknown bits (known: 0x%x)", flags,
                unsigned(MW_SPMM_OFFSETS64 | MW_SPMM_SCALAR));
  if (!fits(batch, rows, cols) || !fits(batch, cols, n) || !fits(batch, rows, n))
    return fail(MW_STATUS_UNSUPPORTED,
                "sparse batched product too large: arrays of 2^31 or more elements");
  const cudaError_t err =
      dtype == MW_FLOAT32
          ? mw::spmm_batched_launch<float>(int(batch), int(rows), int(cols), int(n), row_ptr,
                                           col_idx, static_cast<const float*>(values), int(nnz),
                                           static_cast<const float*>(B), static_cast<float*>(C),
                                           as_stream(stream), flags, row_order)
          : mw::spmm_batched_launch<double>(int(batch), int(rows), int(cols), int(n), row_ptr,
                                            col_idx, static_cast<const double*>(values), int(nnz),
                                            static_cast<const double*>(B), static_cast<double*>(C),
                                            as_stream(stream), flags, row_order);
  return from_cuda(err, "sparse batched product");
}

mw_status mw_spmm_batched(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                          const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                          int64_t nnz, const void* B, void* C, mw_stream stream) {
  return mw_spmm_batched_ex(dtype, batch, rows, cols, n, row_ptr, col_idx, values, nnz, nullptr,
                            MW_SPMM_DEFAULT, B, C, stream);
}

// Block-sparse product on tensor cores (bsr_tc_batched.cuh): the tensor-core precisions only,
// 16 x 8 or 32 x 8 blocks; the arrays checked as mw_spmm_batched_ex's and aligned as
// mw_gemm_batched_ex_ws's operands.
mw_status mw_bsr_batched(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t rows,
                         int64_t cols, int64_t n, int32_t block_rows, int32_t block_cols,
                         const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                         int64_t nblocks, const void* B, void* C, mw_stream stream) {
  const char* name = nullptr;
  if (const mw_status st = check_precision_pair(dtype, precision, &name)) return st;
  if (precision == MW_PRECISION_FP32)
    return fail(MW_STATUS_UNSUPPORTED,
                "mw_bsr_batched runs on tensor cores: MW_PRECISION_FP32 has none (TF32, TF32X3, "
                "BF16, FP16, FP64; the SIMT sparse product is mw_spmm_batched)");
  if (precision == MW_PRECISION_FP64 && !fp64_tensor_cores())
    return fail(MW_STATUS_UNSUPPORTED,
                "mw_bsr_batched with MW_PRECISION_FP64 needs float64 tensor cores (DMMA, compute "
                "capability 8.0 or newer)");
  if ((block_rows != 16 && block_rows != 32) || block_cols != 8)
    return fail(MW_STATUS_UNSUPPORTED,
                "block shape %d x %d: mw_bsr_batched supports 16 x 8 and 32 x 8 blocks "
                "(block_rows = 16 or 32, block_cols = 8) only",
                int(block_rows), int(block_cols));
  if (batch < 1 || rows < 1 || cols < 1 || n < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "batch, rows, cols, n must be >= 1, got %lld, %lld, %lld, %lld", (long long)batch,
                (long long)rows, (long long)cols, (long long)n);
  if (nblocks < 0)
    return fail(MW_STATUS_INVALID_ARGUMENT, "nblocks = %lld must be >= 0", (long long)nblocks);
  if (row_ptr == nullptr || B == nullptr || C == nullptr ||
      (nblocks > 0 && (col_idx == nullptr || values == nullptr)))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "row_ptr, B, C (and col_idx, values when nblocks > 0) must not be NULL");
  const long long row_blocks =
      rows / block_rows + (rows % block_rows != 0);  // no overflow near INT64_MAX
  if (!fits(batch, cols, n) || !fits(batch, rows, n) || !fits(batch, row_blocks + 1) ||
      !fits(nblocks, block_rows * 8))
    return fail(MW_STATUS_UNSUPPORTED,
                "block-sparse batched product too large: arrays of 2^31 or more elements");
  const bool half = precision == MW_PRECISION_BF16 || precision == MW_PRECISION_FP16;
  const size_t elem = precision == MW_PRECISION_FP64 ? sizeof(double) : half ? 2 : sizeof(float);
  const size_t acc = precision == MW_PRECISION_FP64 ? sizeof(double) : sizeof(float);
  const char* operands = half ? "16-bit arrays" : elem == 8 ? "float64 arrays" : "float32 arrays";
  if (reinterpret_cast<uintptr_t>(values) % elem != 0 ||
      reinterpret_cast<uintptr_t>(B) % elem != 0 || reinterpret_cast<uintptr_t>(C) % acc != 0)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "values and B must be %zu-byte aligned (%s), C %zu-byte aligned (%s)", elem,
                operands, acc, acc == 8 ? "float64" : "float32");
  const int bt = int(batch), rr = int(rows), cc = int(cols), nn = int(n), nb = int(nblocks);
  const cudaStream_t s = as_stream(stream);
  cudaError_t err;
  switch (precision) {
    case MW_PRECISION_TF32:
      err = mw::bsr_tc_batched<mw::TcPrecision::kTf32>(
          bt, rr, cc, nn, block_rows, row_ptr, col_idx, static_cast<const float*>(values), nb,
          static_cast<const float*>(B), static_cast<float*>(C), s);
      break;
    case MW_PRECISION_TF32X3:
      err = mw::bsr_tc_batched<mw::TcPrecision::kTf32x3>(
          bt, rr, cc, nn, block_rows, row_ptr, col_idx, static_cast<const float*>(values), nb,
          static_cast<const float*>(B), static_cast<float*>(C), s);
      break;
    case MW_PRECISION_FP16:
      err = mw::bsr_tc_batched<mw::TcPrecision::kFp16>(
          bt, rr, cc, nn, block_rows, row_ptr, col_idx, static_cast<const __half*>(values), nb,
          static_cast<const __half*>(B), static_cast<float*>(C), s);
      break;
    case MW_PRECISION_BF16:
      err = mw::bsr_tc_batched<mw::TcPrecision::kBf16>(
          bt, rr, cc, nn, block_rows, row_ptr, col_idx, static_cast<const __nv_bfloat16*>(values),
          nb, static_cast<const __nv_bfloat16*>(B), static_cast<float*>(C), s);
      break;
    default:  // MW_PRECISION_FP64 on DMMA
      err = mw::bsr_tc_batched<mw::TcPrecision::kFp64>(
          bt, rr, cc, nn, block_rows, row_ptr, col_idx, static_cast<const double*>(values), nb,
          static_cast<const double*>(B), static_cast<double*>(C), s);
      break;
  }
  char what[80];
  std::snprintf(what, sizeof what, "block-sparse batched product (%s)", name + 13);
  return from_cuda(err, what);
}

namespace {

// The largest dynamic shared memory one block may opt in to on the current device
// (cudaDevAttrMaxSharedMemoryPerBlockOptin: 163 KiB on sm_80, 227 KiB on sm_90, 99 KiB on sm_86).
// A failed query counts as 48 KiB, the limit without an opt-in.
size_t shared_optin_limit() {
  int device = 0, bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess ||
      bytes < 1) {
    (void)cudaGetLastError();
    return 48 * 1024;
  }
  return static_cast<size_t>(bytes);
}

// The fused kernel of (desc, dtype, precision) on this device, or why there is none.  *name:
// the precision's MW_PRECISION_* name (check_precision_pair's).
mw_status fused_plan(const mw_conv_desc* d, mw_dtype dtype, mw_precision precision,
                     mw::ConvGeometry* g, mw::FusedPlan* plan, const char** name) {
  if (mw_status st = make_geometry(d, dtype, nullptr, g)) return st;
  if (mw_status st = check_precision_pair(dtype, precision, name)) return st;
  int sm = 0, sr = 0;
  if (!square_tile(d, &sm, &sr) || sm != d->m || sr != d->r)
    return fail(MW_STATUS_UNSUPPORTED,
                "no fused kernel for a rectangular tile (desc.m_axes, desc.r_axes other than 0 "
                "or m, r): the three-phase entries run it");
  if (d->ndim != 2 || !mw::FusedTiles::contains(d->m, d->r))
    return fail(MW_STATUS_UNSUPPORTED,
                "no fused kernel for F(%d, %d) in %dD: fused kernels are 2D F(2, 3) and F(4, 3) "
                "(the three-phase entries run every layer)",
                d->m, d->r, d->ndim);
  if (precision != MW_PRECISION_FP32 && !fp64_tensor_cores())
    return fail(MW_STATUS_UNSUPPORTED,
                "fused %s needs compute capability 8.0 or newer (tensor cores, cp.async)", *name);
  {
    // The kernel's window offsets (winograd_fused.cuh, WindowSet::base) are 32-bit and may point
    // into the padding, up to the padded extent plus a tile past x on each axis: bound them for
    // both layouts.
    const long long N = d->batch, C = d->in_channels, H = d->in_size[0], W = d->in_size[1];
    const long long Hp = H + d->padding[0] + d->padding_end[0] + d->m;
    const long long Wp = W + d->padding[1] + d->padding_end[1] + d->m;
    long long nchw, nhwc;
    const bool overflow =
        __builtin_mul_overflow(N * C * H + Hp, W, &nchw) ||
        __builtin_add_overflow(nchw, Wp, &nchw) || __builtin_mul_overflow(N * H + Hp, W, &nhwc) ||
        __builtin_add_overflow(nhwc, Wp, &nhwc) || __builtin_mul_overflow(nhwc, C, &nhwc);
    if (overflow || nchw > kMaxElements || nhwc > kMaxElements)
      return fail(MW_STATUS_UNSUPPORTED,
                  "fused %s F(%d, 3): the padded input's offsets need 2^31 or more elements; "
                  "use the three-phase entries or less padding",
                  *name, d->m);
  }
  const mw::FusedMath math = static_cast<mw::FusedMath>(precision);
  mw::dispatch_fused(d->m, math, [&](auto m, auto f) {
    *plan = mw::fused_plan_for<decltype(m)::value, decltype(f)::value>(*g);
  });
  if (plan->blocks > INT_MAX)
    return fail(MW_STATUS_UNSUPPORTED,
                "fused %s F(%d, 3): %lld blocks (%s) exceed one launch's 2^31 - 1; split the batch",
                *name, d->m, plan->blocks, plan->config);
  if (const size_t limit = shared_optin_limit(); plan->shared_bytes > limit)
    return fail(MW_STATUS_UNSUPPORTED,
                "fused %s F(%d, 3) (%s) needs %zu bytes of shared memory per block; this device "
                "allows %zu",
                *name, d->m, plan->config, plan->shared_bytes, limit);
  return ok();
}

}  // namespace

mw_status mw_conv2d_fused_plan(const mw_conv_desc* desc, mw_dtype dtype, mw_precision precision,
                               mw_fused_plan* plan) {
  if (plan == nullptr) return fail(MW_STATUS_INVALID_ARGUMENT, "plan is NULL");
  mw::ConvGeometry g;
  mw::FusedPlan p;
  const char* name = nullptr;
  if (mw_status st = fused_plan(desc, dtype, precision, &g, &p, &name)) return st;
  *plan =
      mw_fused_plan{p.config, p.block_k, p.block_p, p.block_c, p.threads, p.blocks, p.shared_bytes};
  return ok();
}

mw_status mw_conv2d_fused(const mw_conv_desc* desc, mw_dtype dtype, mw_precision precision,
                          mw_layout layout, mw_relu relu, int relu_output, const void* x,
                          const void* U, const void* bias, void* y, mw_stream stream) {
  mw::ConvGeometry g;
  mw::FusedPlan p;
  const char* name = nullptr;
  if (mw_status st = fused_plan(desc, dtype, precision, &g, &p, &name)) return st;
  if (x == nullptr || U == nullptr || y == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "x, U and y must not be NULL");
  if (layout != MW_LAYOUT_NCHW && layout != MW_LAYOUT_NHWC)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "layout must be MW_LAYOUT_NCHW or MW_LAYOUT_NHWC, got %d", int(layout));
  if (desc->layout != MW_LAYOUT_NCHW && desc->layout != layout)
    return fail(
        MW_STATUS_INVALID_ARGUMENT,
        "desc.layout (%d) and layout (%d) differ: the fused layer takes its layout argument "
        "(leave desc.layout 0)",
        desc->layout, int(layout));
  if (relu != MW_RELU_NONE && relu != MW_RELU_SPATIAL && relu != MW_RELU_WINOGRAD)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "relu must be MW_RELU_NONE, MW_RELU_SPATIAL or MW_RELU_WINOGRAD, got %d", relu);
  const size_t elem = dtype_size(dtype);
  const size_t u_elem = precision == MW_PRECISION_FP16 || precision == MW_PRECISION_BF16 ? 2 : elem;
  const auto misaligned = [](const void* ptr, size_t a) {
    return ptr != nullptr && reinterpret_cast<uintptr_t>(ptr) % a != 0;
  };
  const struct {
    const char* name;
    const void* ptr;
    size_t align;
  } pointers[] = {{"x", x, elem}, {"y", y, elem}, {"bias", bias, elem}, {"U", U, u_elem}};
  for (const auto& p : pointers)
    if (misaligned(p.ptr, p.align))
      return fail(MW_STATUS_INVALID_ARGUMENT,
                  "%s is not %zu-byte aligned (x, y, bias must be %zu-byte aligned and U %zu-byte "
                  "aligned: their element types)",
                  p.name, p.align, elem, u_elem);
  // 16-byte U copies when every row of C elements is whole 16-byte vectors.
  const int u_vec16 =
      (reinterpret_cast<uintptr_t>(U) % 16 == 0 && (g.C * u_elem) % 16 == 0) ? 1 : 0;
  cudaError_t err = cudaSuccess;
  mw::dispatch_fused(desc->m, static_cast<mw::FusedMath>(precision), [&](auto m, auto f) {
    constexpr int kM = decltype(m)::value;
    constexpr mw::FusedMath kF = decltype(f)::value;
    using T = std::conditional_t<kF == mw::FusedMath::kFp64, double, float>;
    using TS = mw::FusedOperand<kF>;
    const mw::FusedArgs<T, TS> a{static_cast<const T*>(x),
                                 static_cast<const TS*>(U),
                                 static_cast<const T*>(bias),
                                 static_cast<T*>(y),
                                 layout == MW_LAYOUT_NHWC ? 1 : 0,
                                 int(relu),
                                 relu_output != 0,
                                 u_vec16};
    err = mw::winograd_fused_2d_launch<kM, kF>(g, a, as_stream(stream));
  });
  char what[64];
  std::snprintf(what, sizeof what, "fused layer (F(%d, 3), %s)", desc->m,
                name + 13);  // after "MW_PRECISION_"
  return from_cuda(err, what);
}

// 2:4 structured-sparse product on sparse tensor cores (sp24_tc_batched.cuh; its header
// comment is the format of values and meta).
namespace {

bool sp24_half(mw_precision precision) {
  return precision == MW_PRECISION_BF16 || precision == MW_PRECISION_FP16;
}

// The precision of a 2:4 product: the tensor-core float32 modes; why not, otherwise.
mw_status check_sp24_precision(mw_precision precision) {
  if (precision == MW_PRECISION_FP64)
    return fail(MW_STATUS_UNSUPPORTED,
                "2:4 sparse product: MW_PRECISION_FP64 has no sparse tensor core (mma.sp has no "
                "float64 form); use mw_spmm_batched or a dense product");
  if (precision == MW_PRECISION_FP32)
    return fail(MW_STATUS_UNSUPPORTED,
                "2:4 sparse product: MW_PRECISION_FP32 has no sparse tensor core; use "
                "MW_PRECISION_TF32X3 (float32 level) or mw_spmm_batched");
  if (precision != MW_PRECISION_TF32 && precision != MW_PRECISION_TF32X3 &&
      precision != MW_PRECISION_BF16 && precision != MW_PRECISION_FP16)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "precision %d is not an mw_precision (MW_PRECISION_FP32 .. MW_PRECISION_FP64)",
                int(precision));
  return MW_STATUS_SUCCESS;
}

}  // namespace

int64_t mw_sp24_meta_words(mw_precision precision, int64_t batch, int64_t rows, int64_t cols) {
  if (check_sp24_precision(precision) != MW_STATUS_SUCCESS) return -1;
  if (batch < 1 || rows < 1 || cols < 1 || !fits(batch, rows, cols)) {
    fail(MW_STATUS_INVALID_ARGUMENT,
         "batch, rows, cols must be >= 1 with batch * rows * cols < 2^31, got %lld, %lld, %lld",
         (long long)batch, (long long)rows, (long long)cols);
    return -1;
  }
  ok();
  return mw::sp24_meta_words(sp24_half(precision), batch, rows, cols);
}

mw_status mw_sp24_batched(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t rows,
                          int64_t cols, int64_t n, const void* values, const uint32_t* meta,
                          const void* B, void* C, mw_stream stream) {
  if (dtype == MW_FLOAT64)
    return fail(MW_STATUS_UNSUPPORTED,
                "2:4 sparse product: MW_FLOAT64 is not supported (no sparse tensor core for "
                "float64); C is float32");
  if (dtype != MW_FLOAT32) return bad_dtype(dtype);
  if (const mw_status st = check_sp24_precision(precision)) return st;
  if (batch < 1 || rows < 1 || cols < 1 || n < 1)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "batch, rows, cols, n must be >= 1, got %lld, %lld, %lld, %lld", (long long)batch,
                (long long)rows, (long long)cols, (long long)n);
  if (values == nullptr || meta == nullptr || B == nullptr || C == nullptr)
    return fail(MW_STATUS_INVALID_ARGUMENT, "values, meta, B and C must not be NULL");
  const bool half = sp24_half(precision);
  const long long kc = mw::sp24_value_cols(half, cols);
  if (!fits(batch, rows, kc) || !fits(batch, cols, n) || !fits(batch, rows, n) ||
      mw::sp24_meta_words(half, batch, rows, cols) > kMaxElements)
    return fail(MW_STATUS_UNSUPPORTED,
                "2:4 sparse product too large: arrays of 2^31 or more elements");
  if (batch > mw::kSp24TcMaxGridYZ || (rows + 63) / 64 > mw::kSp24TcMaxGridYZ)
    return fail(MW_STATUS_UNSUPPORTED,
                "2:4 sparse product: batch %lld or %lld row blocks exceed the grid's 65535",
                (long long)batch, (long long)((rows + 63) / 64));
  if (reinterpret_cast<uintptr_t>(values) % 16 != 0 || reinterpret_cast<uintptr_t>(meta) % 16 != 0)
    return fail(MW_STATUS_INVALID_ARGUMENT,
                "values and meta must be 16-byte aligned (they are staged in 16-byte copies)");
  const size_t ab = half ? 2 : sizeof(float);
  if (reinterpret_cast<uintptr_t>(B) % ab != 0 || reinterpret_cast<uintptr_t>(C) % sizeof(float))
    return fail(MW_STATUS_INVALID_ARGUMENT,
                half ? "B must be 2-byte aligned (16-bit), C 4-byte aligned (float32)"
                     : "B and C must be 4-byte aligned (float32 arrays)");
  const int bt = int(batch), m = int(rows), k = int(cols), nn = int(n);
  float* c = static_cast<float*>(C);
  cudaError_t err;
  switch (precision) {
    case MW_PRECISION_TF32:
      err = mw::sp24_tc_batched<mw::TcPrecision::kTf32>(
          bt, m, nn, k, static_cast<const float*>(values), meta, static_cast<const float*>(B), c,
          as_stream(stream));
      break;
    case MW_PRECISION_TF32X3:
      err = mw::sp24_tc_batched<mw::TcPrecision::kTf32x3>(
          bt, m, nn, k, static_cast<const float*>(values), meta, static_cast<const float*>(B), c,
          as_stream(stream));
      break;
    case MW_PRECISION_FP16:
      err = mw::sp24_tc_batched<mw::TcPrecision::kFp16>(
          bt, m, nn, k, static_cast<const __half*>(values), meta, static_cast<const __half*>(B), c,
          as_stream(stream));
      break;
    default:  // MW_PRECISION_BF16
      err = mw::sp24_tc_batched<mw::TcPrecision::kBf16>(
          bt, m, nn, k, static_cast<const __nv_bfloat16*>(values), meta,
          static_cast<const __nv_bfloat16*>(B), c, as_stream(stream));
      break;
  }
  return from_cuda(err, "2:4 sparse product");
}

const char* mw_status_name(mw_status status) {
  switch (status) {
    case MW_STATUS_SUCCESS:
      return "MW_STATUS_SUCCESS";
    case MW_STATUS_INVALID_ARGUMENT:
      return "MW_STATUS_INVALID_ARGUMENT";
    case MW_STATUS_UNSUPPORTED:
      return "MW_STATUS_UNSUPPORTED";
    case MW_STATUS_LAUNCH_FAILED:
      return "MW_STATUS_LAUNCH_FAILED";
    case MW_STATUS_CUDA_ERROR:
      return "MW_STATUS_CUDA_ERROR";
  }
  return "MW_STATUS_UNKNOWN";
}

const char* mw_last_error_message(void) { return g_last_error.c_str(); }

const char* mw_build_info(void) {
#if MW_EMULATOR
  return "backend=emulator;arch=cpu;specialized2d=" MW_SPECIALIZED_2D_STR
         ";specialized3d=" MW_SPECIALIZED_3D_STR;
#else
  return "backend=cuda;arch=" MW_CUDA_ARCH_STR ";specialized2d=" MW_SPECIALIZED_2D_STR
         ";specialized3d=" MW_SPECIALIZED_3D_STR;
#endif
}

int mw_get_version(void) { return MW_VERSION; }

}  // extern "C"
