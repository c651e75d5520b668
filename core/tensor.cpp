#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/allocator.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/stream.h"

#ifdef MODA_HAVE_CUDA
#include "core/cuda_check.h"
#include "core/device_copy.h"
#endif

namespace moda {

// ---------------------------------------------------------------------------------------------
// helpers

std::string shape_str(const Shape& s) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < s.size(); ++i) out << (i ? ", " : "") << s[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

static Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// Storage

Storage::Storage(size_t bytes, Device device, HostMemory host) : bytes_(bytes), device_(device), host_(host) {
  allocate();
}

Storage::~Storage() { release(); }

void Storage::allocate() {
  if (!device_.is_cpu())
    data_ = cuda_allocator::allocate(bytes_, device_.index, current_stream());
  else if (host_ == HostMemory::pinned)
    data_ = pinned_host_allocate(bytes_, pinned_);
  else
    data_ = host_allocate(bytes_);
}

void Storage::release() {
  if (!data_) return;
  if (!device_.is_cpu())
    cuda_allocator::free(data_);
  else
    pinned_host_free(data_, pinned_);  // ordinary memory when not pinned
  data_ = nullptr;
}

void Storage::materialize() {
  if (data_ || bytes_ == 0) return;
  allocate();
}

// ---------------------------------------------------------------------------------------------
// creation

static Tensor new_tensor(const Shape& shape, DType dtype, Device device, HostMemory host) {
  for (int64_t d : shape) MODA_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device, host);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return new_tensor(shape, dtype, device, HostMemory::pageable);
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  return new_tensor(shape, dtype, Device::cpu(), HostMemory::pinned);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

// Writes double values into host memory of the given dtype.
static void store_values(const double* src, void* dst, DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = static_cast<float>(src[i]);
      break;
    case DType::F64: std::memcpy(dst, src, n * sizeof(double)); break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<bf16*>(dst)[i] = float_to_bf16(static_cast<float>(src[i]));
      break;
    case DType::I32:
      for (int64_t i = 0; i < n; ++i) static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(src[i]);
      break;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) static_cast<int64_t*>(dst)[i] = static_cast<int64_t>(src[i]);
      break;
    case DType::U16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(src[i]);
      break;
  }
}

static double load_value(const void* src, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::F64: return static_cast<const double*>(src)[i];
    case DType::BF16: return bf16_to_float(static_cast<const bf16*>(src)[i]);
    case DType::I32: return static_cast<const int32_t*>(src)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(src)[i]);
    case DType::U16: return static_cast<const uint16_t*>(src)[i];
  }
  return 0;
}

// Builds a host tensor of `dtype` from doubles, then moves it to `device`.
static Tensor from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  MODA_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  store_values(values.data(), t.data_ptr(), dtype, t.numel());
  return t.to(device);
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype, Device device) {
  return from_doubles(std::vector<double>(values.begin(), values.end()), shape, dtype, device);
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  return from_doubles(values, shape, dtype, device);
}

Tensor Tensor::from_ints(const std::vector<int64_t>& values, const Shape& shape, DType dtype, Device device) {
  MODA_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_ints: ", values.size(),
             " values do not fill shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::I64: t.data<int64_t>()[i] = values[i]; break;
      case DType::I32: t.data<int32_t>()[i] = static_cast<int32_t>(values[i]); break;
      case DType::U16: t.data<uint16_t>()[i] = static_cast<uint16_t>(values[i]); break;
      default: MODA_FAIL("Tensor::from_ints: dtype ", dtype_name(dtype), " is not an integer type");
    }
  }
  return t.to(device);
}

Tensor Tensor::randn(const Shape& shape, uint64_t seed, DType dtype, Device device, double stddev) {
  std::vector<double> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = stddev * rng::normal(seed, i);
  return from_doubles(v, shape, dtype, device);
}

Tensor Tensor::uniform(const Shape& shape, uint64_t seed, double low, double high, DType dtype, Device device) {
  std::vector<double> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = low + (high - low) * rng::uniform(seed, i);
  return from_doubles(v, shape, dtype, device);
}

// ---------------------------------------------------------------------------------------------
// properties

const Shape& Tensor::shape() const {
  MODA_CHECK(impl_, "use of an undefined tensor");
  return impl_->shape;
}
const Shape& Tensor::strides() const {
  MODA_CHECK(impl_, "use of an undefined tensor");
  return impl_->strides;
}
DType Tensor::dtype() const {
  MODA_CHECK(impl_, "use of an undefined tensor");
  return impl_->dtype;
}
Device Tensor::device() const {
  MODA_CHECK(impl_, "use of an undefined tensor");
  return impl_->storage->device();
}

static int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t w = d < 0 ? d + ndim : d;
  MODA_CHECK(w >= 0 && w < ndim, op, ": dimension ", d, " out of range for a tensor of ", ndim, " dims");
  return w;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->shape[i] != 1 && impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  MODA_CHECK(impl_, "use of an undefined tensor");
  MODA_CHECK(!impl_->storage->released(), "use of ", describe(),
             " whose storage is released (a sharded parameter read while not gathered)");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * dtype_size(impl_->dtype);
}

std::string Tensor::describe() const {
  if (!impl_) return "undefined tensor";
  return detail::concat(dtype_name(dtype()), shape_str(shape()), " on ", device().str(),
                        impl_->name.empty() ? "" : " (" + impl_->name + ")");
}

// ---------------------------------------------------------------------------------------------
// views

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  MODA_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
             shape_str(strides), " differ in rank");
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] > 0) last += (shape[i] - 1) * strides[i];
  int64_t capacity = static_cast<int64_t>(impl_->storage->bytes() / dtype_size(dtype()));
  MODA_CHECK(shape_numel(shape) == 0 || (offset >= 0 && last < capacity), "as_strided: view ", shape_str(shape),
             " strides ", shape_str(strides), " offset ", offset, " exceeds storage of ", capacity, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = impl_->dtype;
  return Tensor(impl);
}

Tensor Tensor::view(const Shape& requested) const {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MODA_CHECK(infer < 0, "view: more than one -1 in ", shape_str(requested));
      infer = static_cast<int64_t>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MODA_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in ", shape_str(requested), " for ", numel(),
               " elements");
    shape[infer] = numel() / known;
  }
  MODA_CHECK(shape_numel(shape) == numel(), "view: shape ", shape_str(requested), " does not match ", describe());
  MODA_CHECK(is_contiguous(), "view: ", describe(), " is not contiguous; use reshape()");
  return as_strided(shape, contiguous_strides(shape), offset());
}

Tensor Tensor::reshape(const Shape& shape) const { return is_contiguous() ? view(shape) : contiguous().view(shape); }

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  MODA_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ", start + length,
             ") out of bounds for dim ", d, " of ", describe());
  Shape s = shape();
  s[d] = length;
  return as_strided(s, strides(), offset() + start * strides()[d]);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  MODA_CHECK(index >= 0 && index < shape()[d], "select: index ", index, " out of bounds for dim ", d, " of ",
             describe());
  Shape s = shape(), st = strides();
  int64_t off = offset() + index * st[d];
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return as_strided(s, st, off);
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  a = wrap_dim(a, dim(), "transpose");
  b = wrap_dim(b, dim(), "transpose");
  Shape s = shape(), st = strides();
  std::swap(s[a], s[b]);
  std::swap(st[a], st[b]);
  return as_strided(s, st, offset());
}

// ---------------------------------------------------------------------------------------------
// copies

// Visits every element of `shape` in row-major order, giving the element offsets in two layouts.
template <typename F>
static void for_each_index(const Shape& shape, const Shape& sa, const Shape& sb, F&& f) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(oa, ob);
    for (int64_t d = static_cast<int64_t>(nd) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        oa += sa[d];
        ob += sb[d];
        break;
      }
      oa -= (shape[d] - 1) * sa[d];
      ob -= (shape[d] - 1) * sb[d];
      idx[d] = 0;
    }
  }
}

// Host-to-host copy with dtype conversion between arbitrary layouts.
static void host_copy(const Tensor& src, Tensor& dst) {
  const char* s = static_cast<const char*>(src.data_ptr());
  char* d = static_cast<char*>(dst.data_ptr());
  if (src.dtype() == dst.dtype()) {
    size_t es = dtype_size(src.dtype());
    if (src.is_contiguous() && dst.is_contiguous()) {
      std::memcpy(d, s, src.nbytes());
      return;
    }
    for_each_index(src.shape(), src.strides(), dst.strides(),
                   [&](int64_t a, int64_t b) { std::memcpy(d + b * es, s + a * es, es); });
    return;
  }
  for_each_index(src.shape(), src.strides(), dst.strides(), [&](int64_t a, int64_t b) {
    double v = load_value(s, src.dtype(), a);
    store_values(&v, d + b * dtype_size(dst.dtype()), dst.dtype(), 1);
  });
}

#ifdef MODA_HAVE_CUDA
// Copies with a GPU on either side. Device-to-device (any layouts, any dtypes) is one kernel on the
// current stream with no synchronisation. Host-to-device and device-to-host move contiguous bytes
// of one dtype with cudaMemcpyAsync, converting and re-laying out on the device where needed, and
// synchronise only when the host is about to read the result or could free the source.
static void cuda_copy(const Tensor& src, Tensor& dst) {
  cudaStream_t stream = current_stream();
  if (src.numel() == 0) return;
  const bool plain = src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous();
  if (!src.device().is_cpu() && !dst.device().is_cpu()) {
    if (plain) {
      MODA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(), cudaMemcpyDeviceToDevice, stream),
                      "copy_");
      return;
    }
    MODA_CHECK(src.device() == dst.device(), "copy_: ", src.describe(), " -> ", dst.describe(),
               ": a copy between two GPUs needs matching dtypes and contiguous layouts");
    device_copy::strided_copy(src.data_ptr(), src.dtype(), src.strides(), dst.data_ptr(), dst.dtype(), dst.strides(),
                              src.shape(), stream);
    return;
  }
  if (plain) {
    MODA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(), cudaMemcpyDefault, stream), "copy_");
    MODA_CUDA_CHECK(cudaStreamSynchronize(stream), "copy_");
    return;
  }
  if (src.device().is_cpu()) {  // host -> device: upload contiguous bytes, then convert on the device
    cuda_copy(src.contiguous().to(dst.device()), dst);
    return;
  }
  // device -> host: convert and lay out on the device (no-op when already so), download contiguous
  // bytes, then lay out on the host where dst is strided
  const Tensor staged = src.to(dst.dtype()).contiguous();
  if (dst.is_contiguous()) return cuda_copy(staged, dst);
  Tensor host = Tensor::empty(src.shape(), dst.dtype(), Device::cpu());
  cuda_copy(staged, host);
  host_copy(host, dst);
}
#endif

void Tensor::copy_(const Tensor& src) {
  check_same_shape("copy_", *this, src);
  if (device().is_cpu() && src.device().is_cpu()) {
    host_copy(src, *this);
    return;
  }
#ifdef MODA_HAVE_CUDA
  cuda_copy(src, *this);
#else
  MODA_FAIL("copy_: ", src.describe(), " -> ", describe(), " needs CUDA, but moda was built without it");
#endif
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), dtype(), target);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), target, device());
  out.copy_(*this);
  return out;
}

void Tensor::fill_(double value) {
  if (numel() == 0) return;
  uint64_t pattern = 0;
  store_values(&value, &pattern, dtype(), 1);  // the element's bits (little-endian low bytes)
  if (device().is_cpu()) {
    char* d = static_cast<char*>(data_ptr());
    size_t es = dtype_size(dtype());
    if (is_contiguous()) {
      auto fill_as = [&](auto bits) { std::fill_n(reinterpret_cast<decltype(bits)*>(d), numel(), bits); };
      if (es == 2)
        fill_as(uint16_t(pattern));
      else if (es == 4)
        fill_as(uint32_t(pattern));
      else
        fill_as(uint64_t(pattern));
      return;
    }
    Shape unused(static_cast<size_t>(dim()), 0);
    for_each_index(shape(), strides(), unused, [&](int64_t a, int64_t) { std::memcpy(d + a * es, &pattern, es); });
    return;
  }
#ifdef MODA_HAVE_CUDA
  device_copy::strided_fill(data_ptr(), dtype(), strides(), shape(), pattern, current_stream());
#else
  MODA_FAIL("fill_: ", describe(), " needs CUDA, but moda was built without it");
#endif
}

// Every element of `t`, on the host, converted to T with the dtype switch outside the loop: the
// per-element switch through double this replaced cost ~15 ns an element, 24 ms of every
// batch-32 generation step on the H200 (the step's logits, 32 x 50304, come to the host).
// int64 values reach T without passing through double, so they keep all 64 bits.
template <typename T>
static std::vector<T> host_values(const Tensor& t) {
  Tensor host = t.to(Device::cpu()).contiguous();
  const int64_t n = host.numel();
  std::vector<T> out(static_cast<size_t>(n));
  auto convert = [&](const auto* src) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(src[i]);
  };
  const void* src = host.data_ptr();
  switch (host.dtype()) {
    case DType::F32: convert(static_cast<const float*>(src)); break;
    case DType::F64: convert(static_cast<const double*>(src)); break;
    case DType::I32: convert(static_cast<const int32_t*>(src)); break;
    case DType::I64: convert(static_cast<const int64_t*>(src)); break;
    case DType::U16: convert(static_cast<const uint16_t*>(src)); break;
    case DType::BF16: {
      const bf16* b = static_cast<const bf16*>(src);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(bf16_to_float(b[i]));
      break;
    }
  }
  return out;
}

std::vector<double> Tensor::to_double_vector() const { return host_values<double>(*this); }
std::vector<float> Tensor::to_float_vector() const { return host_values<float>(*this); }
std::vector<int64_t> Tensor::to_int_vector() const { return host_values<int64_t>(*this); }

double Tensor::item() const {
  MODA_CHECK(numel() == 1, "item: ", describe(), " has ", numel(), " elements, expected 1");
  return to_double_vector()[0];
}

// ---------------------------------------------------------------------------------------------
// checks

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  MODA_CHECK(a.shape() == b.shape(), op, ": shape mismatch: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  MODA_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.device().str(), " and ",
             b.device().str());
}

void check_dtype(const char* op, const Tensor& t, std::initializer_list<DType> allowed, const char* what) {
  std::string names;
  for (DType d : allowed) {
    if (t.dtype() == d) return;
    names += (names.empty() ? "" : ", ") + std::string(dtype_name(d));
  }
  MODA_FAIL(op, ": ", what, " has dtype ", dtype_name(t.dtype()), ", expected one of ", names);
}

}  // namespace moda
