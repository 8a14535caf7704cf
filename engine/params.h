// The model's memory for learnt parameters: one flat buffer of all parameters and one flat buffer
// of all their gradients (same layout), with named views; non-learnt values (BN running
// statistics, a fixed gamma) live in a separate flat buffer. Entries keep their registration order, which the
// network makes equal to PyTorch's state_dict order, so a checkpoint is a walk over entries().
//
// Two phases: add() every tensor while building the network (returns an id), then allocate();
// only after that are the pointers valid. One all-reduce over grads() and one SGD update over
// params() cover the whole model.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tensor.h"

namespace engine {

enum class ParamKind {
    learnt,  // in params() and grads(); updated by the optimiser
    fixed,   // a value that is not learnt, e.g. a BN gamma fixed to 1 (fix_gamma); in state(),
             // so the optimiser (which walks params()) never touches it; no gradient
    state,   // non-learnt state, e.g. BN running mean/var; in state()
};

struct ParamEntry {
    std::string name;
    std::vector<i64> shape;
    ParamKind kind;
    i64 offset = 0;  // element offset into params()/grads() or into state()
    i64 numel = 0;
};

template <typename T>
class ParamStore {
public:
    // Register a tensor; returns its id. Names must be unique.
    int add(const std::string& name, std::vector<i64> shape, ParamKind kind = ParamKind::learnt) {
        ENGINE_CHECK(!allocated_, ArgError, "ParamStore::add(", name, ") after allocate()");
        ENGINE_CHECK(!index_.count(name), ArgError, "ParamStore: duplicate name ", name);
        ParamEntry e;
        e.name = name;
        e.numel = shape_numel(shape);
        e.shape = std::move(shape);
        e.kind = kind;
        i64& total = kind == ParamKind::learnt ? n_params_ : n_state_;
        e.offset = total;
        total += e.numel;
        index_[name] = (int)entries_.size();
        entries_.push_back(std::move(e));
        return (int)entries_.size() - 1;
    }

    // Allocate the three flat buffers (zeroed) on a device.
    void allocate(Device dev) {
        params_ = Buffer<T>(n_params_, dev);
        grads_ = Buffer<T>(n_params_, dev);
        state_ = Buffer<T>(n_state_, dev);
        allocated_ = true;
    }
    bool allocated() const { return allocated_; }
    Device device() const { return params_.device(); }

    const std::vector<ParamEntry>& entries() const { return entries_; }
    const ParamEntry& entry(int id) const { return entries_.at(id); }
    int id(const std::string& name) const {
        auto it = index_.find(name);
        ENGINE_CHECK(it != index_.end(), ArgError, "no parameter named ", name);
        return it->second;
    }
    bool has(const std::string& name) const { return index_.count(name) > 0; }

    // The storage of an entry whatever its kind (in params() for learnt, state() otherwise).
    T* value(int id) { return base(id) + entries_.at(id).offset; }
    T* param(int id) { return value(id); }
    // The gradient of a learnt entry (same offset in grads() as in params()).
    T* grad(int id) {
        ENGINE_CHECK(entries_.at(id).kind == ParamKind::learnt, ArgError, entries_[id].name,
                     " is not learnt: it has no gradient");
        return grads_.data() + entries_[id].offset;
    }

    Buffer<T>& params() { return params_; }
    Buffer<T>& grads() { return grads_; }
    Buffer<T>& state() { return state_; }
    i64 num_params() const { return n_params_; }
    i64 num_state() const { return n_state_; }

private:
    T* base(int id) {
        ENGINE_CHECK(allocated_, ArgError, "ParamStore: pointer requested before allocate()");
        return entries_.at(id).kind == ParamKind::learnt ? params_.data() : state_.data();
    }
    std::vector<ParamEntry> entries_;
    std::unordered_map<std::string, int> index_;
    i64 n_params_ = 0, n_state_ = 0;
    bool allocated_ = false;
    Buffer<T> params_, grads_, state_;
};

}  // namespace engine
