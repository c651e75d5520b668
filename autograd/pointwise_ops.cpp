#include "autograd/pointwise_ops.h"

#include "autograd/dispatch.h"
#include "autograd/function.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/swiglu.h"
#ifdef MODA_HAVE_CUDA
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/softmax.h"
#include "kernels/cuda/swiglu.h"
#endif

namespace moda::ops {
namespace {

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  MODA_CHECK(a.defined() && b.defined(), op, ": undefined input");
  check_same_shape(op, a, b);
  check_same_device(op, a, b);
  MODA_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.describe(), " vs ", b.describe());
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// ---- raw (non-recording) computations shared by forward and backward ---------------------------

Tensor mul_raw(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in.contiguous(), b = b_in.contiguous(), out = empty_like(a);
  const int64_t n = a.numel();
  dispatch(
      "mul", a,
      [&](auto t) {
        using T = decltype(t);
        cpu::mul(out.data<T>(), a.data<T>(), b.data<T>(), n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(cuda::mul(out.data<T>(), a.data<T>(), b.data<T>(), n, current_stream()));
      });
  return out;
}

Tensor scale_raw(const Tensor& a_in, double alpha) {
  Tensor a = a_in.contiguous(), out = empty_like(a);
  const int64_t n = a.numel();
  dispatch(
      "scale", a,
      [&](auto t) {
        using T = decltype(t);
        cpu::scale(out.data<T>(), a.data<T>(), alpha, n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(cuda::scale(out.data<T>(), a.data<T>(), alpha, n, current_stream()));
      });
  return out;
}

Tensor cast_raw(const Tensor& a_in, DType dtype) {
  if (a_in.dtype() == dtype) return a_in;
  Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), dtype, a.device());
  const int64_t n = a.numel();
  const bool f32_bf16 = a.dtype() == DType::F32 && dtype == DType::BF16;
  const bool bf16_f32 = a.dtype() == DType::BF16 && dtype == DType::F32;
  dispatch_device(
      a,
      [&] {
        if (f32_bf16)
          cpu::cast(out.data<bf16>(), a.data<float>(), n);
        else if (bf16_f32)
          cpu::cast(out.data<float>(), a.data<bf16>(), n);
        else
          out.copy_(a);  // e.g. f32 <-> f64: the host copy converts
      },
      [&] {
        MODA_CHECK(f32_bf16 || bf16_f32, "cast: ", a.describe(), " -> ", dtype_name(dtype), " is not supported on ",
                   a.device().str(), "; expected f32 <-> bf16");
        MODA_IF_CUDA(if (f32_bf16) cuda::cast(out.data<bf16>(), a.data<float>(), n, current_stream());
                     else cuda::cast(out.data<float>(), a.data<bf16>(), n, current_stream()););
      });
  return out;
}

// Reduction of all elements into a {1} tensor scaled by `factor` (1 for sum, 1/n for mean).
Tensor sum_raw(const char* op, const Tensor& a_in, bool mean) {
  Tensor a = a_in.contiguous();
  const int64_t n = a.numel();
  MODA_CHECK(!mean || n > 0, op, ": mean of an empty tensor ", a.describe());
  const DType out_dtype = a.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor out = Tensor::empty({1}, out_dtype, a.device());
  dispatch(
      op, a,
      [&](auto t) {
        using T = decltype(t);
        if (mean)
          cpu::mean(out.data<T>(), a.data<T>(), n);
        else
          cpu::sum(out.data<T>(), a.data<T>(), n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(if (mean) cuda::mean(out.data<float>(), a.data<T>(), n, current_stream());
                     else cuda::sum(out.data<float>(), a.data<T>(), n, current_stream()));
      });
  return out;
}

// Gradient of sum/mean: every element gets factor * g[0] (g stays on the device: no host sync).
Tensor broadcast_grad(const Tensor& g_in, const Tensor& like, double factor) {
  Tensor out = empty_like(like);
  const int64_t n = out.numel();
  dispatch(
      "sum backward", out,
      [&](auto t) {
        using T = decltype(t);
        cpu::fill(out.data<T>(), g_in.to(DType::F64).data<double>()[0] * factor, n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(const Tensor g = cast_raw(g_in, DType::F32).contiguous();
                     cuda::fill(out.data<T>(), g.data<float>(), factor, n, current_stream()););
      });
  return out;
}

int64_t last_dim(const char* op, const Tensor& x) {
  MODA_CHECK(x.dim() >= 1, op, ": needs at least one dimension, got ", x.describe());
  return x.size(-1);
}

}  // namespace

// ---- differentiable ops ------------------------------------------------------------------------

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  check_same("add", a_in, b_in);
  Tensor a = a_in.contiguous(), b = b_in.contiguous(), out = empty_like(a);
  const int64_t n = a.numel();
  dispatch(
      "add", a,
      [&](auto t) {
        using T = decltype(t);
        cpu::add(out.data<T>(), a.data<T>(), b.data<T>(), n);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(cuda::add(out.data<T>(), a.data<T>(), b.data<T>(), n, current_stream()));
      });
  return record_op("add", {a_in, b_in}, {out}, [](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0], g[0]};  // the engine never adds in place into a shared gradient
  })[0];
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same("mul", a, b);
  Tensor out = mul_raw(a, b);
  return record_op("mul", {a, b}, {out}, [a, b](const std::vector<Tensor>& g) {
    const Tensor dy = cast_raw(g[0], a.dtype());  // the kernel reads all three in one dtype
    return std::vector<Tensor>{mul_raw(dy, b), mul_raw(dy, a)};
  })[0];
}

Tensor scale(const Tensor& a, double alpha) {
  MODA_CHECK(a.defined(), "scale: undefined input");
  Tensor out = scale_raw(a, alpha);
  return record_op("scale", {a}, {out},
                   [alpha](const std::vector<Tensor>& g) { return std::vector<Tensor>{scale_raw(g[0], alpha)}; })[0];
}

Tensor cast(const Tensor& a, DType dtype) {
  MODA_CHECK(a.defined(), "cast: undefined input");
  if (a.dtype() == dtype) return a;
  Tensor out = cast_raw(a, dtype);
  const DType back = a.dtype();
  return record_op("cast", {a}, {out},
                   [back](const std::vector<Tensor>& g) { return std::vector<Tensor>{cast_raw(g[0], back)}; })[0];
}

Tensor sum(const Tensor& a) {
  MODA_CHECK(a.defined(), "sum: undefined input");
  Tensor out = sum_raw("sum", a, false);
  return record_op("sum", {a}, {out},
                   [a](const std::vector<Tensor>& g) { return std::vector<Tensor>{broadcast_grad(g[0], a, 1.0)}; })[0];
}

Tensor mean(const Tensor& a) {
  MODA_CHECK(a.defined(), "mean: undefined input");
  Tensor out = sum_raw("mean", a, true);
  return record_op("mean", {a}, {out}, [a](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{broadcast_grad(g[0], a, 1.0 / static_cast<double>(a.numel()))};
  })[0];
}

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, double eps) {
  MODA_CHECK(x_in.defined(), "rms_norm: undefined input");
  const int64_t cols = last_dim("rms_norm", x_in);
  MODA_CHECK(eps >= 0, "rms_norm: eps must be >= 0, got ", eps);
  if (weight.defined()) {
    MODA_CHECK(weight.dim() == 1 && weight.size(0) == cols, "rms_norm: weight ", weight.describe(),
               " must have shape [", cols, "] (the last dim of ", x_in.describe(), ")");
    check_same_device("rms_norm", x_in, weight);
  }
  Tensor x = x_in.contiguous();
  Tensor w = weight.defined() ? cast_raw(weight, x.dtype()).contiguous() : Tensor();
  const int64_t rows = cols > 0 ? x.numel() / cols : 0;
  const bool on_cpu = x.device().is_cpu();
  // rstd is saved for the backward: T on the CPU (f64 for gradcheck), f32 on CUDA.
  Tensor y = empty_like(x);
  Tensor rstd = Tensor::empty({rows}, on_cpu ? x.dtype() : DType::F32, x.device());
  dispatch(
      "rms_norm", x,
      [&](auto t) {
        using T = decltype(t);
        cpu::rmsnorm_forward(y.data<T>(), rstd.data<T>(), x.data<T>(), w.defined() ? w.data<T>() : nullptr, rows, cols,
                             eps);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(cuda::rmsnorm_forward(y.data<T>(), rstd.data<float>(), x.data<T>(),
                                           w.defined() ? w.data<T>() : nullptr, rows, cols, eps, current_stream()));
      });
  const bool want_dw = weight.defined();
  return record_op("rms_norm", {x_in, weight}, {y}, [x, w, rstd, rows, cols, want_dw](const std::vector<Tensor>& g) {
    Tensor dy = g[0].dtype() == x.dtype() ? g[0].contiguous() : cast_raw(g[0], x.dtype()).contiguous();
    Tensor dx = empty_like(x);
    Tensor dw = want_dw ? Tensor::empty({cols}, x.device().is_cpu() ? x.dtype() : DType::F32, x.device()) : Tensor();
    dispatch(
        "rms_norm backward", x,
        [&](auto t) {
          using T = decltype(t);
          cpu::rmsnorm_backward(dx.data<T>(), want_dw ? dw.data<T>() : nullptr, dy.data<T>(), x.data<T>(),
                                w.defined() ? w.data<T>() : nullptr, rstd.data<T>(), rows, cols);
        },
        [&](auto t) {
          using T [[maybe_unused]] = decltype(t);  // unused without CUDA
          MODA_IF_CUDA(cuda::rmsnorm_backward(dx.data<T>(), want_dw ? dw.data<float>() : nullptr, dy.data<T>(),
                                              x.data<T>(), w.defined() ? w.data<T>() : nullptr, rstd.data<float>(),
                                              rows, cols, false, current_stream()));
        });
    return std::vector<Tensor>{dx, dw};
  })[0];
}

namespace {

// RoPE over a [B, T, H, d] tensor whose last dim is contiguous; `sign` +1 forward, -1 backward.
Tensor rope_raw(const Tensor& x_in, double theta, int64_t offset, bool forward) {
  Tensor x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  RopeShape s;
  s.batch = x.size(0), s.tokens = x.size(1), s.heads = x.size(2), s.head_dim = x.size(3);
  s.theta = theta, s.pos_offset = offset;
  const RopeStrides in_strides{x.stride(0), x.stride(1), x.stride(2)};
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const RopeStrides out_strides = RopeStrides::contiguous(s);
  dispatch(
      "rope", x,
      [&](auto t) {
        using T = decltype(t);
        if (forward)
          cpu::rope_forward(out.data<T>(), out_strides, x.data<T>(), in_strides, s);
        else
          cpu::rope_backward(out.data<T>(), out_strides, x.data<T>(), in_strides, s);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(
            if (forward) cuda::rope_forward(out.data<T>(), out_strides, x.data<T>(), in_strides, s, current_stream());
            else cuda::rope_backward(out.data<T>(), out_strides, x.data<T>(), in_strides, s, current_stream()));
      });
  return out;
}

}  // namespace

Tensor rope(const Tensor& x, double theta, int64_t position_offset) {
  MODA_CHECK(x.defined(), "rope: undefined input");
  MODA_CHECK(x.dim() == 4, "rope: expected x of shape [B, T, H, d], got ", x.describe());
  MODA_CHECK(x.size(3) % 2 == 0, "rope: head dim must be even, got ", x.describe());
  Tensor out = rope_raw(x, theta, position_offset, true);
  return record_op("rope", {x}, {out}, [theta, position_offset](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{rope_raw(g[0], theta, position_offset, false)};
  })[0];
}

Tensor swiglu(const Tensor& x_in) {
  MODA_CHECK(x_in.defined(), "swiglu: undefined input");
  const int64_t two_h = last_dim("swiglu", x_in);
  MODA_CHECK(two_h % 2 == 0, "swiglu: last dim must be even ([gate | up] halves), got ", x_in.describe());
  const int64_t hidden = two_h / 2;
  Tensor x = x_in.contiguous();
  const int64_t rows = two_h > 0 ? x.numel() / two_h : 0;
  Shape out_shape = x.shape();
  out_shape.back() = hidden;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch(
      "swiglu", x,
      [&](auto t) {
        using T = decltype(t);
        cpu::swiglu_forward(out.data<T>(), x.data<T>(), rows, hidden);
      },
      [&](auto t) {
        using T [[maybe_unused]] = decltype(t);  // unused without CUDA
        MODA_IF_CUDA(cuda::swiglu_forward(out.data<T>(), x.data<T>(), rows, hidden, current_stream()));
      });
  return record_op("swiglu", {x_in}, {out}, [x, rows, hidden](const std::vector<Tensor>& g) {
    Tensor dout = g[0].dtype() == x.dtype() ? g[0].contiguous() : cast_raw(g[0], x.dtype()).contiguous();
    Tensor dx = empty_like(x);
    dispatch(
        "swiglu backward", x,
        [&](auto t) {
          using T = decltype(t);
          cpu::swiglu_backward(dx.data<T>(), dout.data<T>(), x.data<T>(), rows, hidden);
        },
        [&](auto t) {
          using T [[maybe_unused]] = decltype(t);  // unused without CUDA
          MODA_IF_CUDA(
              cuda::swiglu_backward(dx.data<T>(), dout.data<T>(), x.data<T>(), rows, hidden, current_stream()));
        });
    return std::vector<Tensor>{dx};
  })[0];
}

Tensor softmax(const Tensor& x_in) {
  MODA_CHECK(x_in.defined(), "softmax: undefined input");
  const int64_t cols = last_dim("softmax", x_in);
  Tensor x = x_in.contiguous();
  const int64_t rows = cols > 0 ? x.numel() / cols : 0;
  Tensor y = empty_like(x);
  if (cols > 0)
    dispatch(
        "softmax", x,
        [&](auto t) {
          using T = decltype(t);
          cpu::softmax_forward(y.data<T>(), x.data<T>(), rows, cols);
        },
        [&](auto t) {
          using T [[maybe_unused]] = decltype(t);  // unused without CUDA
          MODA_IF_CUDA(cuda::softmax_forward(y.data<T>(), x.data<T>(), rows, cols, current_stream()));
        });
  // The closure keeps y without its graph link: y's node owns the closure (a cycle otherwise).
  return record_op("softmax", {x_in}, {y}, [y = y.detach(), rows, cols](const std::vector<Tensor>& g) {
    Tensor dy = g[0].dtype() == y.dtype() ? g[0].contiguous() : cast_raw(g[0], y.dtype()).contiguous();
    Tensor dx = empty_like(y);
    if (cols > 0)
      dispatch(
          "softmax backward", y,
          [&](auto t) {
            using T = decltype(t);
            cpu::softmax_backward(dx.data<T>(), y.data<T>(), dy.data<T>(), rows, cols);
          },
          [&](auto t) {
            using T [[maybe_unused]] = decltype(t);  // unused without CUDA
            MODA_IF_CUDA(cuda::softmax_backward(dx.data<T>(), y.data<T>(), dy.data<T>(), rows, cols, current_stream()));
          });
    return std::vector<Tensor>{dx};
  })[0];
}

}  // namespace moda::ops
