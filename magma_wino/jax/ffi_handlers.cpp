// XLA FFI handlers of magma_wino.jax: one handler per entry of the C ABI (<magma_wino.h>) that a
// Winograd layer and its gradients are made of — the three tile transforms, their adjoints and
// the batched products — so that JAX composes the layer (magma_wino/jax/__init__.py) and XLA
// owns every buffer: U, V and M are ordinary intermediates of the computation, the transposes
// and reshapes between the phases are XLA's own.
//
// Compiled on first use by magma_wino/jax/_build.py against jax.ffi.include_dir(), twice:
//   - for XLA's CPU platform, linked against libmagma_wino_emu (the emulator build: the CUDA
//     kernels' source on XLA's host buffers, synchronous);
//   - with -DMW_JAX_CUDA for XLA's CUDA platform, linked against libmagma_wino (the kernels on
//     XLA's stream, ffi::PlatformStream<cudaStream_t>; device buffers).
// The handler bodies are the same; only the stream differs (nullptr on the CPU).
//
// Attributes: `desc`, the layer's mw_conv_desc as 21 int64 (ndim, m, r, batch, in_channels,
// out_channels, in_size[3], padding[3], padding_end[3], m_axes[3], r_axes[3]); `generic` (nonzero:
// the generic kernels with the `matrices` argument, Aᵀ G Bᵀ back to back; zero: the specialised
// kernels, matrices unused by the forward transforms); `relu` (mw_relu) and `precision`
// (mw_precision).  Element types come from the buffers.  Every size the C ABI checks is checked
// again there (a wrong buffer is an error status, never an access outside it).
#include <magma_wino.h>

#include <cstdint>
#include <string>
#include <utility>

#include "xla/ffi/api/ffi.h"

#ifdef MW_JAX_CUDA
// cudaStream_t exactly as CUDA's driver_types.h declares it: the handlers pass XLA's stream on to
// the library and need nothing else of the CUDA runtime, so they build without its headers.
typedef struct CUstream_st* cudaStream_t;
#endif

namespace ffi = xla::ffi;
using Desc = ffi::Span<const int64_t>;

namespace {

ffi::Error status(mw_status st, const char* what) {
  if (st == MW_STATUS_SUCCESS) return ffi::Error::Success();
  return ffi::Error::Internal(std::string("magma_wino ") + what + ": " + mw_status_name(st) + ": " +
                              mw_last_error_message());
}

// The mw_dtype of an XLA element type (F32, F64, F16, BF16), or false.
bool dtype_of(ffi::DataType t, mw_dtype* out) {
  switch (t) {
    case ffi::DataType::F32:
      *out = MW_FLOAT32;
      return true;
    case ffi::DataType::F64:
      *out = MW_FLOAT64;
      return true;
    case ffi::DataType::F16:
      *out = MW_FLOAT16;
      return true;
    case ffi::DataType::BF16:
      *out = MW_BFLOAT16;
      return true;
    default:
      return false;
  }
}

ffi::Error decode(Desc d, mw_conv_desc* out) {
  if (d.size() != 21)
    return ffi::Error::InvalidArgument("magma_wino: the desc attribute must hold 21 int64");
  *out = mw_conv_desc{};
  out->ndim = static_cast<int>(d[0]);
  out->m = static_cast<int>(d[1]);
  out->r = static_cast<int>(d[2]);
  out->batch = d[3];
  out->in_channels = d[4];
  out->out_channels = d[5];
  for (int i = 0; i < MW_MAX_NDIM; ++i) {
    out->in_size[i] = d[6 + i];
    out->padding[i] = d[9 + i];
    out->padding_end[i] = d[12 + i];
    out->m_axes[i] = static_cast<int>(d[15 + i]);  // rectangular tiles (0: m, r)
    out->r_axes[i] = static_cast<int>(d[18 + i]);
  }
  return ffi::Error::Success();
}

// The layer's descriptor, geometry and compute dtype (that of `data`: float32 or float64), after
// checking that every buffer has the element count the geometry gives it.
struct Layer {
  mw_conv_desc desc;
  mw_conv_geometry geo;
  mw_dtype dtype;
};

ffi::Error layer(Desc d, const ffi::AnyBuffer& data, Layer* L) {
  if (auto e = decode(d, &L->desc); e.failure()) return e;
  if (!dtype_of(data.element_type(), &L->dtype) ||
      (L->dtype != MW_FLOAT32 && L->dtype != MW_FLOAT64))
    return ffi::Error::InvalidArgument("magma_wino: the layer's data must be float32 or float64");
  return status(mw_conv_get_geometry(&L->desc, L->dtype, &L->geo), "geometry");
}

ffi::Error sized(const ffi::AnyBuffer& b, int64_t elems, const char* name) {
  if (static_cast<int64_t>(b.element_count()) == elems) return ffi::Error::Success();
  return ffi::Error::InvalidArgument(std::string("magma_wino: ") + name + " has " +
                                     std::to_string(b.element_count()) + " elements, expected " +
                                     std::to_string(elems));
}

// The generic kernels' matrices (checked to hold them, in the compute dtype), or NULL.
ffi::Error matrices(const Layer& L, const ffi::AnyBuffer& mats, bool required, const void** out) {
  *out = nullptr;
  if (!required) return ffi::Error::Success();
  mw_dtype t;
  if (!dtype_of(mats.element_type(), &t) || t != L.dtype)
    return ffi::Error::InvalidArgument("magma_wino: matrices must have the data's dtype");
  if (auto e = sized(mats, L.geo.matrices_elems, "matrices"); e.failure()) return e;
  *out = mats.untyped_data();
  return ffi::Error::Success();
}

// ---------------------------------------------------------------- the handler bodies

ffi::Error FilterTransform(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer w,
                           ffi::Result<ffi::AnyBuffer> U, Desc d, int64_t generic) {
  Layer L;
  mw_dtype u_dtype;
  const void* A;
  if (auto e = layer(d, w, &L); e.failure()) return e;
  if (!dtype_of(U->element_type(), &u_dtype))
    return ffi::Error::InvalidArgument(
        "magma_wino: U must be float32, float64, float16 or bfloat16");
  if (auto e = sized(w, L.geo.w_elems, "w"); e.failure()) return e;
  if (auto e = sized(*U, L.geo.u_elems, "U"); e.failure()) return e;
  if (auto e = matrices(L, mats, generic != 0, &A); e.failure()) return e;
  return status(
      mw_filter_transform_ex(&L.desc, L.dtype, u_dtype, w.untyped_data(), U->untyped_data(), A, s),
      "filter transform");
}

ffi::Error InputTransform(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer x,
                          ffi::Result<ffi::AnyBuffer> V, Desc d, int64_t generic, int64_t relu) {
  Layer L;
  mw_dtype v_dtype;
  const void* A;
  if (auto e = layer(d, x, &L); e.failure()) return e;
  if (!dtype_of(V->element_type(), &v_dtype))
    return ffi::Error::InvalidArgument(
        "magma_wino: V must be float32, float64, float16 or bfloat16");
  if (auto e = sized(x, L.geo.x_elems, "x"); e.failure()) return e;
  if (auto e = sized(*V, L.geo.v_elems, "V"); e.failure()) return e;
  if (auto e = matrices(L, mats, generic != 0, &A); e.failure()) return e;
  return status(mw_input_transform_ex(&L.desc, L.dtype, v_dtype, x.untyped_data(),
                                      V->untyped_data(), static_cast<mw_relu>(relu), A, s),
                "input transform");
}

ffi::Error OutputTransform(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer M, ffi::AnyBuffer b,
                           ffi::Result<ffi::AnyBuffer> y, Desc d, int64_t generic) {
  Layer L;
  const void* A;
  if (auto e = layer(d, M, &L); e.failure()) return e;
  if (b.element_type() != M.element_type() || y->element_type() != M.element_type())
    return ffi::Error::InvalidArgument("magma_wino: M, bias and y must have one dtype");
  if (auto e = sized(M, L.geo.m_elems, "M"); e.failure()) return e;
  if (auto e = sized(b, L.desc.out_channels, "bias"); e.failure()) return e;
  if (auto e = sized(*y, L.geo.y_elems, "y"); e.failure()) return e;
  if (auto e = matrices(L, mats, generic != 0, &A); e.failure()) return e;
  return status(mw_output_transform(&L.desc, L.dtype, M.untyped_data(), b.untyped_data(),
                                    y->untyped_data(), A, s),
                "output transform");
}

// The adjoints: `in` (of in_elems) -> `out` (of out_elems), matrices always required.
using Adjoint = mw_status (*)(const mw_conv_desc*, mw_dtype, const void*, void*, const void*,
                              mw_stream);

ffi::Error adjoint(mw_stream s, Adjoint fn, const char* what, ffi::AnyBuffer mats,
                   ffi::AnyBuffer in, ffi::Result<ffi::AnyBuffer> out, Desc d,
                   int64_t mw_conv_geometry::* in_elems, int64_t mw_conv_geometry::* out_elems) {
  Layer L;
  const void* A;
  if (auto e = layer(d, in, &L); e.failure()) return e;
  if (out->element_type() != in.element_type())
    return ffi::Error::InvalidArgument(std::string("magma_wino ") + what +
                                       ": input and output must have one dtype");
  if (auto e = sized(in, L.geo.*in_elems, "the adjoint's input"); e.failure()) return e;
  if (auto e = sized(*out, L.geo.*out_elems, "the adjoint's output"); e.failure()) return e;
  if (auto e = matrices(L, mats, true, &A); e.failure()) return e;
  return status(fn(&L.desc, L.dtype, in.untyped_data(), out->untyped_data(), A, s), what);
}

ffi::Error OutputAdjoint(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer dy,
                         ffi::Result<ffi::AnyBuffer> dM, Desc d) {
  return adjoint(s, mw_output_transform_adjoint, "output transform adjoint", mats, dy, dM, d,
                 &mw_conv_geometry::y_elems, &mw_conv_geometry::m_elems);
}

ffi::Error InputAdjoint(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer dV,
                        ffi::Result<ffi::AnyBuffer> dx, Desc d) {
  return adjoint(s, mw_input_transform_adjoint, "input transform adjoint", mats, dV, dx, d,
                 &mw_conv_geometry::v_elems, &mw_conv_geometry::x_elems);
}

ffi::Error FilterAdjoint(mw_stream s, ffi::AnyBuffer mats, ffi::AnyBuffer dU,
                         ffi::Result<ffi::AnyBuffer> dw, Desc d) {
  return adjoint(s, mw_filter_transform_adjoint, "filter transform adjoint", mats, dU, dw, d,
                 &mw_conv_geometry::u_elems, &mw_conv_geometry::w_elems);
}

// C[b] = A[b] · B[b]: A batch x m x k, B batch x k x n, C batch x m x n (float32 or float64, the
// dtype of the call); A and B of the precision's operand type (mw_gemm_batched_ex).
ffi::Error GemmBatched(mw_stream s, ffi::AnyBuffer A, ffi::AnyBuffer B,
                       ffi::Result<ffi::AnyBuffer> C, int64_t precision) {
  const auto ad = A.dimensions(), bd = B.dimensions(), cd = C->dimensions();
  if (ad.size() != 3 || bd.size() != 3 || cd.size() != 3 || bd[0] != ad[0] || cd[0] != ad[0] ||
      bd[1] != ad[2] || cd[1] != ad[1] || cd[2] != bd[2])
    return ffi::Error::InvalidArgument(
        "magma_wino products: A, B, C must be batch x m x k, batch x k x n, batch x m x n");
  mw_dtype dtype;
  if (!dtype_of(C->element_type(), &dtype))
    return ffi::Error::InvalidArgument("magma_wino products: C must be float32 or float64");
  return status(mw_gemm_batched_ex(dtype, static_cast<mw_precision>(precision), ad[0], ad[1], bd[2],
                                   ad[2], A.untyped_data(), B.untyped_data(), C->untyped_data(), s),
                "products");
}

// ---------------------------------------------------------------- platforms

// The binding's context: none on the CPU (the emulator is synchronous), XLA's stream on CUDA.
template <bool Cuda>
auto bind() {
#ifdef MW_JAX_CUDA
  if constexpr (Cuda) return ffi::Ffi::Bind().Ctx<ffi::PlatformStream<cudaStream_t>>();
#endif
  if constexpr (!Cuda) return ffi::Ffi::Bind();
}

// A body as a handler of one platform: the stream (CUDA) or nullptr (CPU) as its first argument.
template <bool Cuda, auto Body>
struct On;
template <typename... Args, ffi::Error (*Body)(mw_stream, Args...)>
struct On<false, Body> {
  static ffi::Error Call(Args... args) { return Body(nullptr, std::move(args)...); }
};
#ifdef MW_JAX_CUDA
template <typename... Args, ffi::Error (*Body)(mw_stream, Args...)>
struct On<true, Body> {
  static ffi::Error Call(cudaStream_t stream, Args... args) {
    return Body(static_cast<mw_stream>(stream), std::move(args)...);
  }
};
#endif

using Buf = ffi::AnyBuffer;

// The bindings, each built on the one before: two buffers in, one out (the transforms, their
// adjoints, the products); then the attributes of each entry.
template <bool Cuda>
auto two_to_one() {
  return bind<Cuda>().template Arg<Buf>().template Arg<Buf>().template Ret<Buf>();
}
template <bool Cuda>
auto adjoint_transform() {
  return two_to_one<Cuda>().template Attr<Desc>("desc");
}
template <bool Cuda>
auto filter_transform() {
  return adjoint_transform<Cuda>().template Attr<int64_t>("generic");
}
template <bool Cuda>
auto input_transform() {
  return filter_transform<Cuda>().template Attr<int64_t>("relu");
}
template <bool Cuda>
auto gemm_batched() {
  return two_to_one<Cuda>().template Attr<int64_t>("precision");
}
template <bool Cuda>
auto output_transform() {  // matrices, M and the bias in, y out
  return bind<Cuda>()
      .template Arg<Buf>()
      .template Arg<Buf>()
      .template Arg<Buf>()
      .template Ret<Buf>()
      .template Attr<Desc>("desc")
      .template Attr<int64_t>("generic");
}

}  // namespace

// One symbol per (entry, platform): MwJax<Entry>Cpu, and MwJax<Entry>Cuda in the CUDA build;
// _build.py registers them as the targets magma_wino_<entry>.
#define MW_JAX_HANDLER(Name, Body, binding, Platform, cuda) \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(MwJax##Name##Platform, (On<cuda, Body>::Call), binding<cuda>())

#ifdef MW_JAX_CUDA
#define MW_JAX_HANDLERS(Name, Body, binding) MW_JAX_HANDLER(Name, Body, binding, Cuda, true)
#else
#define MW_JAX_HANDLERS(Name, Body, binding) MW_JAX_HANDLER(Name, Body, binding, Cpu, false)
#endif

MW_JAX_HANDLERS(FilterTransform, FilterTransform, filter_transform);
MW_JAX_HANDLERS(InputTransform, InputTransform, input_transform);
MW_JAX_HANDLERS(OutputTransform, OutputTransform, output_transform);
MW_JAX_HANDLERS(OutputAdjoint, OutputAdjoint, adjoint_transform);
MW_JAX_HANDLERS(InputAdjoint, InputAdjoint, adjoint_transform);
MW_JAX_HANDLERS(FilterAdjoint, FilterAdjoint, adjoint_transform);
MW_JAX_HANDLERS(GemmBatched, GemmBatched, gemm_batched);
