#pragma once
// Tensor: a strided view (shape, strides, element offset) of reference-counted storage on one
// device, plus the autograd metadata the graph in autograd/ needs. Copying a Tensor copies the
// handle, not the data (like torch.Tensor). Views (reshape of contiguous data, narrow, select,
// transpose, as_strided) share storage and never copy.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/device.h"
#include "core/dtype.h"

namespace moda {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);

// Where a CPU storage's memory comes from: ordinary pages, or page-locked ones that the GPU copies
// into at full bus speed (snapshot buffers that checkpoints reuse; core/allocator.h).
enum class HostMemory { pageable, pinned };

class Storage {
 public:
  // Allocates (CUDA: caching allocator, current stream; CPU: `host` memory).
  Storage(size_t bytes, Device device, HostMemory host = HostMemory::pageable);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Frees the memory but keeps this object, so every tensor and view of it stays a valid handle
  // that must not be read until materialize() gives it memory again (its values are then
  // undefined until written). Sharded training frees gathered parameters this way between uses
  // (distributed/parameter_sharding.h) without touching the layers that hold them.
  void release();
  void materialize();
  bool released() const { return data_ == nullptr && bytes_ > 0; }
  bool pinned() const { return pinned_; }  // page-locked host memory (HostMemory::pinned with a driver)

 private:
  void allocate();

  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  HostMemory host_;
  bool pinned_ = false;
};

class Tensor;
struct Node;  // autograd/graph.h

struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;                               // the node that produced this tensor (non-leaf)
  int output_nr = 0;                                           // which output of grad_fn
  std::shared_ptr<Node> grad_accumulator;                      // leaves: accumulates into `grad`
  std::shared_ptr<struct TensorImpl> grad;                     // accumulated gradient (leaves)
  std::vector<std::function<void(Tensor&)>> grad_ready_hooks;  // leaves: fire once grad is complete
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape, strides;
  DType dtype = DType::F32;
  AutogradMeta autograd;
  std::string name;  // optional, for error messages and parameter names
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- creation -------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  // A CPU tensor in page-locked memory (ordinary memory without a CUDA driver): device -> host
  // copies into it skip the driver's staging buffer. For host buffers that are filled again and
  // again, such as checkpoint snapshots; pinning is slow, so do not make them per use.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  // Copies host values (converted to `dtype`) into a new tensor on `device`.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, DType dtype = DType::F32,
                            Device device = Device::cpu());
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::F64,
                            Device device = Device::cpu());
  static Tensor from_ints(const std::vector<int64_t>& values, const Shape& shape, DType dtype = DType::I64,
                          Device device = Device::cpu());
  // Counter-based random numbers (core/rng.h): element i depends only on (seed, i), so the same seed
  // gives the same values on every device and for every dtype (before rounding to the dtype).
  static Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::F32, Device device = Device::cpu(),
                      double stddev = 1.0);
  static Tensor uniform(const Shape& shape, uint64_t seed, double low, double high, DType dtype = DType::F32,
                        Device device = Device::cpu());

  // --- properties -----------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape()); }
  size_t nbytes() const { return numel() * dtype_size(dtype()); }
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  int64_t offset() const { return impl_->offset; }
  void* data_ptr() const;  // address of the first element (storage + offset)
  template <typename T>
  T* data() const {
    return static_cast<T*>(data_ptr());
  }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::string& name() const { return impl_->name; }
  Tensor& set_name(std::string n) {
    impl_->name = std::move(n);
    return *this;
  }
  std::string describe() const;  // "f32[2, 3] on cpu"
  bool same_storage(const Tensor& o) const { return impl_->storage == o.impl_->storage; }

  // --- views (share storage) ------------------------------------------------------------------
  Tensor view(const Shape& shape) const;     // contiguous tensors only; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // view when contiguous, else a contiguous copy
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;

  // --- copies ---------------------------------------------------------------------------------
  Tensor contiguous() const;       // self when already contiguous
  Tensor clone() const;            // always a new contiguous copy
  Tensor to(Device device) const;  // self when already there
  Tensor to(DType dtype) const;    // self when already that dtype
  void copy_(const Tensor& src);   // same shape; any devices, dtypes and strides
  void fill_(double value);
  void zero_() { fill_(0.0); }
  std::vector<float> to_float_vector() const;    // host copy, row-major
  std::vector<double> to_double_vector() const;  // host copy, row-major
  std::vector<int64_t> to_int_vector() const;
  double item() const;  // one-element tensors

  // --- autograd (implemented in autograd/) ----------------------------------------------------
  bool requires_grad() const { return impl_ && impl_->autograd.requires_grad; }
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const { return !impl_->autograd.grad_fn; }
  Tensor grad() const;  // undefined until a backward pass reached this leaf
  void set_grad(const Tensor& g);
  void zero_grad();       // drops the gradient
  void backward() const;  // this must be a one-element tensor; seeds with 1
  void backward(const Tensor& seed) const;
  // Fires when this leaf's gradient is complete for the current backward pass (after accumulation).
  void register_grad_ready_hook(std::function<void(Tensor&)> hook);
  Tensor detach() const;  // shares data, no graph

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Errors name the op and both shapes.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, std::initializer_list<DType> allowed, const char* what = "input");

}  // namespace moda
