// XLA FFI handlers of magma_wino.jax (CPU): the three-phase Winograd layer and its gradients,
// through the installed emulator library's C ABI (libmagma_wino_emu, <magma_wino.h>) — the
// same kernel source as the CUDA build, run on XLA's CPU buffers.  Compiled on first use by
// magma_wino/jax/_build.py against jax.ffi.include_dir(); registered as
//   magma_wino_conv2d_fwd   x (N,C,H,W), w (K,C,r,r), b (K)  -> y (N,K,Ho,Wo)
//   magma_wino_conv2d_bwd   x, w, dy                       -> dx (N,C,H,W), dw (K,C,r,r)
// with attributes m and the padding (top, bottom, left, right); float32 or float64, all
// arguments of one dtype (the Python side checks it too).
#include <magma_wino.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Layer {
  mw_conv_desc desc{};
  mw_conv_geometry geo{};
  mw_dtype dtype = MW_FLOAT32;
  size_t elem = 4;
  std::vector<unsigned char> matrices;  // Aᵀ, G, Bᵀ: the adjoint (generic) kernels need them
};

ffi::Error status(mw_status st, const char* what) {
  if (st == MW_STATUS_SUCCESS) return ffi::Error::Success();
  return ffi::Error::Internal(std::string("magma_wino ") + what + ": " + mw_status_name(st) + ": " +
                              mw_last_error_message());
}

// The descriptor of x (N,C,H,W) and w (K,C,r,r), with the geometry and the matrices.
ffi::Error make_layer(const ffi::AnyBuffer& x, const ffi::AnyBuffer& w, int64_t m, int64_t top,
                      int64_t bottom, int64_t left, int64_t right, Layer* L) {
  const auto xd = x.dimensions(), wd = w.dimensions();
  if (xd.size() != 4 || wd.size() != 4 || wd[2] != wd[3] || xd[1] != wd[1])
    return ffi::Error::InvalidArgument(
        "magma_wino conv2d: x must be N x C x H x W and w K x C x r x r");
  if (x.element_type() != w.element_type())
    return ffi::Error::InvalidArgument("magma_wino conv2d: x and w must have one dtype");
  if (x.element_type() == ffi::DataType::F32) {
    L->dtype = MW_FLOAT32;
    L->elem = 4;
  } else if (x.element_type() == ffi::DataType::F64) {
    L->dtype = MW_FLOAT64;
    L->elem = 8;
  } else {
    return ffi::Error::InvalidArgument("magma_wino conv2d: float32 or float64 only");
  }
  mw_conv_desc& d = L->desc;
  d.ndim = 2;
  d.m = static_cast<int>(m);
  d.r = static_cast<int>(wd[2]);
  d.batch = xd[0];
  d.in_channels = xd[1];
  d.out_channels = wd[0];
  d.in_size[0] = xd[2];
  d.in_size[1] = xd[3];
  d.padding[0] = top;
  d.padding_end[0] = bottom;
  d.padding[1] = left;
  d.padding_end[1] = right;
  if (auto e = status(mw_conv_get_geometry(&d, L->dtype, &L->geo), "geometry"); e.failure())
    return e;
  L->matrices.resize(static_cast<size_t>(L->geo.matrices_elems) * L->elem);
  return status(mw_winograd_matrices(d.m, d.r, nullptr, nullptr, L->dtype, L->matrices.data()),
                "winograd matrices");
}

// The specialised kernels where the tile has them (NULL matrices), else the generic ones.
const void* forward_matrices(const Layer& L) {
  return mw_has_specialized_transform(2, L.desc.m, L.desc.r) ? nullptr : L.matrices.data();
}

// out[b] = in[b]ᵀ for `batch` rows x cols matrices.
void transpose(const Layer& L, const void* in, void* out, int64_t batch, int64_t rows,
               int64_t cols) {
  const auto* s = static_cast<const unsigned char*>(in);
  auto* t = static_cast<unsigned char*>(out);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        std::memcpy(t + ((b * cols + j) * rows + i) * L.elem,
                    s + ((b * rows + i) * cols + j) * L.elem, L.elem);
}

ffi::Error Conv2dForward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer b,
                         ffi::Result<ffi::AnyBuffer> y, int64_t m, int64_t top, int64_t bottom,
                         int64_t left, int64_t right) {
  Layer L;
  if (auto e = make_layer(x, w, m, top, bottom, left, right, &L); e.failure()) return e;
  const mw_conv_geometry& g = L.geo;
  if (y->element_count() != static_cast<size_t>(g.y_elems))
    return ffi::Error::InvalidArgument("magma_wino conv2d: y has the wrong size");
  std::vector<unsigned char> U(g.u_elems * L.elem), V(g.v_elems * L.elem), M(g.m_elems * L.elem);
  const void* mats = forward_matrices(L);
  const mw_conv_desc* d = &L.desc;
  if (auto e = status(mw_filter_transform(d, L.dtype, w.untyped_data(), U.data(), mats, nullptr),
                      "filter transform");
      e.failure())
    return e;
  if (auto e = status(
          mw_input_transform(d, L.dtype, x.untyped_data(), V.data(), MW_RELU_NONE, mats, nullptr),
          "input transform");
      e.failure())
    return e;
  if (auto e = status(mw_gemm_batched(L.dtype, g.positions, d->out_channels, g.num_tiles,
                                      d->in_channels, U.data(), V.data(), M.data(), nullptr),
                      "products");
      e.failure())
    return e;
  return status(
      mw_output_transform(d, L.dtype, M.data(), b.untyped_data(), y->untyped_data(), mats, nullptr),
      "output transform");
}

ffi::Error Conv2dBackward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer dy,
                          ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dw, int64_t m,
                          int64_t top, int64_t bottom, int64_t left, int64_t right) {
  Layer L;
  if (auto e = make_layer(x, w, m, top, bottom, left, right, &L); e.failure()) return e;
  const mw_conv_geometry& g = L.geo;
  const mw_conv_desc* d = &L.desc;
  const int64_t C = d->in_channels, K = d->out_channels, P = g.num_tiles, B = g.positions;
  if (dy.element_count() != static_cast<size_t>(g.y_elems) ||
      dx->element_count() != static_cast<size_t>(g.x_elems) ||
      dw->element_count() != static_cast<size_t>(g.w_elems))
    return ffi::Error::InvalidArgument(
        "magma_wino conv2d backward: dy, dx or dw has the wrong size");
  const void* mats = L.matrices.data();
  std::vector<unsigned char> dM(g.m_elems * L.elem), U(g.u_elems * L.elem), Ut(g.u_elems * L.elem),
      dV(g.v_elems * L.elem), V(g.v_elems * L.elem), Vt(g.v_elems * L.elem), dU(g.u_elems * L.elem);
  // dM = (Aᵀ)ᵀ dY A per tile; dx = the input adjoint of dV = Uᵀ dM; dw = the filter adjoint of
  // dU = dM Vᵀ (docs/backward.md: the same decomposition the plans' backward runs)
  if (auto e = status(
          mw_output_transform_adjoint(d, L.dtype, dy.untyped_data(), dM.data(), mats, nullptr),
          "output transform adjoint");
      e.failure())
    return e;
  if (auto e = status(mw_filter_transform(d, L.dtype, w.untyped_data(), U.data(), mats, nullptr),
                      "filter transform");
      e.failure())
    return e;
  transpose(L, U.data(), Ut.data(), B, K, C);
  if (auto e = status(
          mw_gemm_batched(L.dtype, B, C, P, K, Ut.data(), dM.data(), dV.data(), nullptr), "Uᵀ dM");
      e.failure())
    return e;
  if (auto e = status(
          mw_input_transform_adjoint(d, L.dtype, dV.data(), dx->untyped_data(), mats, nullptr),
          "input transform adjoint");
      e.failure())
    return e;
  if (auto e = status(
          mw_input_transform(d, L.dtype, x.untyped_data(), V.data(), MW_RELU_NONE, mats, nullptr),
          "input transform");
      e.failure())
    return e;
  transpose(L, V.data(), Vt.data(), B, C, P);
  if (auto e = status(
          mw_gemm_batched(L.dtype, B, K, C, P, dM.data(), Vt.data(), dU.data(), nullptr), "dM Vᵀ");
      e.failure())
    return e;
  return status(
      mw_filter_transform_adjoint(d, L.dtype, dU.data(), dw->untyped_data(), mats, nullptr),
      "filter transform adjoint");
}

}  // namespace

// The attributes both handlers take: the tile and the padding.
template <typename Binding>
auto layer_attrs(Binding binding) {
  return std::move(binding)  // the builder's methods take *this as an rvalue
      .template Attr<int64_t>("m")
      .template Attr<int64_t>("top")
      .template Attr<int64_t>("bottom")
      .template Attr<int64_t>("left")
      .template Attr<int64_t>("right");
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(MwJaxConv2dForward, Conv2dForward,
                              layer_attrs(ffi::Ffi::Bind()
                                              .Arg<ffi::AnyBuffer>()
                                              .Arg<ffi::AnyBuffer>()
                                              .Arg<ffi::AnyBuffer>()
                                              .Ret<ffi::AnyBuffer>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MwJaxConv2dBackward, Conv2dBackward,
                              layer_attrs(ffi::Ffi::Bind()
                                              .Arg<ffi::AnyBuffer>()
                                              .Arg<ffi::AnyBuffer>()
                                              .Arg<ffi::AnyBuffer>()
                                              .Ret<ffi::AnyBuffer>()
                                              .Ret<ffi::AnyBuffer>()));
