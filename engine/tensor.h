// Buffer<T>: RAII, move-only storage of n elements on the CPU or a GPU (counted by the device
// byte counter). Tensor<T>: a Buffer with a shape (64-bit sizes, row-major, NCHW for images).
#pragma once
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "engine/error.h"

namespace engine {

template <typename T>
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(i64 n, Device dev = Device::cpu) : n_(n), dev_(dev) {
        ENGINE_CHECK(n >= 0, ShapeError, "Buffer: negative size ", n);
        data_ = static_cast<T*>(device_alloc(dev, bytes()));
        zero();
    }
    ~Buffer() { device_free(dev_, data_, bytes()); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    Buffer(Buffer&& o) noexcept { swap(o); }
    Buffer& operator=(Buffer&& o) noexcept {
        Buffer tmp(std::move(o));
        swap(tmp);
        return *this;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    i64 size() const { return n_; }
    size_t bytes() const { return (size_t)n_ * sizeof(T); }
    Device device() const { return dev_; }
    bool empty() const { return n_ == 0; }

    void zero() { device_memset_zero(dev_, data_, bytes()); }
    // Host access (CPU buffers only).
    T& operator[](i64 i) { return data_[i]; }
    const T& operator[](i64 i) const { return data_[i]; }

    std::vector<T> to_host() const {
        std::vector<T> v((size_t)n_);
        device_copy(v.data(), Device::cpu, data_, dev_, bytes());
        return v;
    }
    void copy_from_host(const T* src, i64 n) {
        ENGINE_CHECK(n == n_, ShapeError, "copy_from_host: ", n, " elements into a buffer of ", n_);
        device_copy(data_, dev_, src, Device::cpu, bytes());
    }
    void copy_from_host(const std::vector<T>& v) { copy_from_host(v.data(), (i64)v.size()); }

private:
    void swap(Buffer& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(n_, o.n_);
        std::swap(dev_, o.dev_);
    }
    T* data_ = nullptr;
    i64 n_ = 0;
    Device dev_ = Device::cpu;
};

inline i64 shape_numel(const std::vector<i64>& shape) {
    i64 n = 1;
    for (i64 d : shape) n *= d;
    return n;
}

inline std::string shape_str(const std::vector<i64>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
}

template <typename T>
class Tensor {
public:
    Tensor() = default;
    explicit Tensor(std::vector<i64> shape, Device dev = Device::cpu)
        : shape_(std::move(shape)), buf_(shape_numel(shape_), dev) {}
    Tensor(std::initializer_list<i64> shape, Device dev = Device::cpu)
        : Tensor(std::vector<i64>(shape), dev) {}

    T* data() { return buf_.data(); }
    const T* data() const { return buf_.data(); }
    i64 numel() const { return buf_.size(); }
    const std::vector<i64>& shape() const { return shape_; }
    i64 dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
    int ndim() const { return (int)shape_.size(); }
    Device device() const { return buf_.device(); }
    Buffer<T>& buffer() { return buf_; }
    void zero() { buf_.zero(); }
    T& operator[](i64 i) { return buf_[i]; }
    const T& operator[](i64 i) const { return buf_[i]; }
    std::vector<T> to_host() const { return buf_.to_host(); }
    void copy_from_host(const std::vector<T>& v) { buf_.copy_from_host(v); }

    // Same elements, another shape with the same element count (e.g. flatten NCHW -> N x CHW).
    void reshape(std::vector<i64> shape) {
        ENGINE_CHECK(shape_numel(shape) == numel(), ShapeError, "reshape ", shape_str(shape_),
                     " -> ", shape_str(shape), ": element counts differ");
        shape_ = std::move(shape);
    }

private:
    std::vector<i64> shape_;
    Buffer<T> buf_;
};

}  // namespace engine
