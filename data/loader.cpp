// The batch loader: worker threads, bounded prefetch, shuffling, sharding, resume, error
// policies (semantics in loader.h).
#include "data/loader.h"

#include <algorithm>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace data {

namespace {

using engine::splitmix64;

// Rethrows the exception in flight as the same engine type, its message led by `where` unless
// it already names it (the dataset's own messages usually do).
template <typename E>
[[noreturn]] void throw_with_where(const E& e, const std::string& where) {
    const std::string m = e.what();
    if (m.find(where) != std::string::npos) throw E(m);
    throw E(where + ": " + m);
}

[[noreturn]] void rethrow_with_where(const std::string& where) {
    try {
        throw;
    } catch (const engine::FormatError& e) {
        throw_with_where(e, where);
    } catch (const engine::IoError& e) {
        throw_with_where(e, where);
    } catch (const engine::DataError& e) {
        throw_with_where(e, where);
    } catch (const engine::ArgError& e) {
        throw_with_where(e, where);
    } catch (const engine::ShapeError& e) {
        throw_with_where(e, where);
    } catch (const engine::DeviceError& e) {
        throw_with_where(e, where);
    } catch (const engine::Error& e) {
        throw_with_where(e, where);
    }
}

std::string describe_safely(const ImageDataset& ds, i64 i) {
    try {
        return ds.describe(i);
    } catch (...) {
        return engine::str("sample ", i);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// BatchBuffer

BatchBuffer::BatchBuffer(i64 capacity, int height, int width, bool pin) : capacity_(capacity) {
    ENGINE_CHECK(capacity > 0 && height > 0 && width > 0, engine::ArgError,
                 "BatchBuffer: capacity ", capacity, ", size ", height, "x", width);
    batch_.height = height;
    batch_.width = width;
    batch_.images = static_cast<float*>(
        engine::pinned_alloc((size_t)capacity * 3 * (size_t)height * (size_t)width * sizeof(float), pin));
    batch_.labels = static_cast<std::int32_t*>(
        engine::pinned_alloc((size_t)capacity * sizeof(std::int32_t), pin));
    batch_.indices = static_cast<i64*>(engine::pinned_alloc((size_t)capacity * sizeof(i64), pin));
}

void BatchBuffer::release() {
    engine::pinned_free(batch_.images);
    engine::pinned_free(batch_.labels);
    engine::pinned_free(batch_.indices);
    batch_ = Batch();
    capacity_ = 0;
}

BatchBuffer::~BatchBuffer() { release(); }

BatchBuffer::BatchBuffer(BatchBuffer&& o) noexcept : capacity_(o.capacity_), batch_(o.batch_) {
    o.capacity_ = 0;
    o.batch_ = Batch();
}

BatchBuffer& BatchBuffer::operator=(BatchBuffer&& o) noexcept {
    if (this != &o) {
        release();
        capacity_ = o.capacity_;
        batch_ = o.batch_;
        o.capacity_ = 0;
        o.batch_ = Batch();
    }
    return *this;
}

// ---------------------------------------------------------------------------------------------
// Loader: construction and the epoch order

Loader::Loader(const ImageDataset& dataset, const LoaderConfig& config, LoaderPosition start)
    : ds_(dataset), cfg_(config) {
    n_ = ds_.size();
    ENGINE_CHECK(cfg_.batch_size > 0, engine::ArgError, "Loader: batch size ", cfg_.batch_size);
    ENGINE_CHECK(cfg_.world >= 1 && cfg_.rank >= 0 && cfg_.rank < cfg_.world, engine::ArgError,
                 "Loader: rank ", cfg_.rank, " of world ", cfg_.world);
    ENGINE_CHECK(cfg_.workers >= 1 && cfg_.prefetch >= 1, engine::ArgError, "Loader: workers ",
                 cfg_.workers, ", prefetch ", cfg_.prefetch, " (each must be >= 1)");
    ENGINE_CHECK(cfg_.height > 0 && cfg_.width > 0, engine::ArgError, "Loader: image size ",
                 cfg_.height, "x", cfg_.width);
    ENGINE_CHECK(cfg_.max_replacements >= 0, engine::ArgError, "Loader: max_replacements ",
                 cfg_.max_replacements);
    ENGINE_CHECK(n_ > 0, engine::ArgError, "Loader: the dataset is empty");
    const i64 global = cfg_.batch_size * cfg_.world;
    steps_ = cfg_.remainder == Remainder::drop ? n_ / global : (n_ + global - 1) / global;
    ENGINE_CHECK(steps_ > 0, engine::ArgError, "Loader: ", n_, " samples make no full global batch of ",
                 cfg_.world, " ranks x ", cfg_.batch_size, " (use Remainder::wrap or a smaller batch)");
    for (const IdentityRange& r : ds_.identities())
        if (r.end > r.begin) identity_begin_.push_back(r.begin);
    std::sort(identity_begin_.begin(), identity_begin_.end());

    const int nslots = cfg_.prefetch + 1;  // prefetch queued + the one the consumer holds
    for (int s = 0; s < nslots; ++s) {
        slots_.emplace_back(cfg_.batch_size, cfg_.height, cfg_.width, cfg_.pin_memory);
        free_slots_.push_back(nslots - 1 - s);
    }
    ENGINE_CHECK(start.epoch >= 0 && start.step >= 0 && start.step < steps_, engine::ArgError,
                 "Loader: start position epoch ", start.epoch, " step ", start.step,
                 " (an epoch has ", steps_, " steps)");
    next_claim_ = next_get_ = start.epoch * steps_ + start.step;
    start_workers();
}

Loader::~Loader() { stop_workers(); }

i64 Loader::dropped_per_epoch() const {
    return cfg_.remainder == Remainder::drop ? n_ - steps_ * cfg_.batch_size * cfg_.world : 0;
}

i64 Loader::wrapped_per_epoch() const {
    return cfg_.remainder == Remainder::wrap ? steps_ * cfg_.batch_size * cfg_.world - n_ : 0;
}

std::vector<i64> Loader::epoch_order(i64 epoch) const {
    std::vector<i64> order((size_t)n_);
    for (i64 i = 0; i < n_; ++i) order[i] = i;
    if (cfg_.shuffle) {
        // One generator per epoch, seeded from (seed, epoch): epoch e's order does not depend on
        // how many epochs ran before, which is what resuming needs.
        engine::Rng rng(splitmix64(cfg_.shuffle_seed ^ splitmix64((u64)epoch + 0x5851F42Dull)));
        rng.shuffle(order);
    }
    return order;
}

std::shared_ptr<const std::vector<i64>> Loader::order_cached(i64 epoch) {
    std::lock_guard<std::mutex> lk(order_mu_);
    auto it = orders_.find(epoch);
    if (it != orders_.end()) return it->second;
    auto order = std::make_shared<const std::vector<i64>>(epoch_order(epoch));
    orders_[epoch] = order;
    while (orders_.size() > 3) orders_.erase(orders_.begin());  // keep the latest epochs
    return order;
}

std::vector<i64> Loader::step_indices(i64 epoch, i64 step) const {
    ENGINE_CHECK(step >= 0 && step < steps_, engine::ArgError, "step ", step, " of ", steps_);
    const std::vector<i64> order = epoch_order(epoch);
    std::vector<i64> idx((size_t)cfg_.batch_size);
    const i64 base = (step * cfg_.world + cfg_.rank) * cfg_.batch_size;
    for (i64 j = 0; j < cfg_.batch_size; ++j) idx[j] = order[(base + j) % n_];
    return idx;
}

// ---------------------------------------------------------------------------------------------
// One sample: decode, check, augment; the skip policy's replacement

i64 Loader::replacement(i64 idx, i64 epoch, int attempt, bool whole_set_fallback) const {
    // The identity range holding idx: the last begin <= idx.
    auto it = std::upper_bound(identity_begin_.begin(), identity_begin_.end(), idx);
    if (it != identity_begin_.begin()) {
        const i64 k = (i64)(it - identity_begin_.begin()) - 1;
        const IdentityRange& r = ds_.identities()[(size_t)k];
        // identities() is in order, so the k-th begin is the k-th range when none are empty;
        // check rather than assume.
        if (r.begin <= idx && idx < r.end) {
            const i64 size = r.end - r.begin;
            if (attempt < size) return r.begin + (idx - r.begin + attempt) % size;
        }
    }
    if (!whole_set_fallback) return -1;
    const u64 h = splitmix64(cfg_.shuffle_seed ^ splitmix64((u64)idx * 0x9E3779B97F4A7C15ull ^
                                                           ((u64)epoch << 20) ^ (u64)attempt));
    return (i64)(h % (u64)n_);
}

void Loader::load_sample(i64 idx, i64 epoch, bool augment, bool whole_set_fallback, float* image,
                         std::int32_t* label, i64* index,
                         std::vector<std::string>* replaced) const {
    i64 cand = idx;
    for (int attempt = 0;; ++attempt) {
        try {
            const std::string where = ds_.describe(cand);
            const int lab = ds_.label(cand);
            ENGINE_CHECK(lab >= 0 && lab < ds_.num_classes(), engine::DataError, where,
                         ": label ", lab, " is outside 0..", ds_.num_classes() - 1);
            const std::vector<u8> bytes = ds_.encoded(cand);
            const Image img =
                decode_image(bytes, where, cfg_.height, cfg_.width, cfg_.size_policy);
            const AugmentDraw draw = augment ? draw_augment(cfg_.augment, cand, epoch) : AugmentDraw();
            augment_to_chw(image, img, draw);
            *label = (std::int32_t)lab;
            *index = cand;
            return;
        } catch (const engine::Error& e) {
            const std::string where = describe_safely(ds_, cand);
            if (cfg_.on_error == ErrorPolicy::raise) rethrow_with_where(where);
            std::string msg = e.what();
            if (msg.find(where) == std::string::npos) msg = where + ": " + msg;
            replaced->push_back(msg);
            const i64 next =
                attempt < cfg_.max_replacements ? replacement(idx, epoch, attempt + 1, whole_set_fallback) : -1;
            ENGINE_CHECK(next >= 0, engine::DataError, describe_safely(ds_, idx),
                         ": bad sample and no loadable replacement (", attempt + 1,
                         " candidates tried", whole_set_fallback ? "" : " within its identity",
                         "); last error: ", msg);
            cand = next;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stream: workers, get(), position

void Loader::start_workers() {
    stop_ = false;
    for (int t = 0; t < cfg_.workers; ++t) threads_.emplace_back([this] { worker_loop(); });
}

void Loader::stop_workers() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
}

void Loader::produce(i64 seq, Batch* out, std::vector<std::string>* replaced) {
    const i64 epoch = seq / steps_, step = seq % steps_;
    const auto order = order_cached(epoch);
    const i64 base = (step * cfg_.world + cfg_.rank) * cfg_.batch_size;
    out->n = cfg_.batch_size;
    out->position = {epoch, step};
    const i64 per_image = 3 * (i64)cfg_.height * cfg_.width;
    for (i64 j = 0; j < cfg_.batch_size; ++j) {
        const i64 idx = (*order)[(size_t)((base + j) % n_)];
        load_sample(idx, epoch, true, true, out->images + j * per_image, out->labels + j,
                    out->indices + j, replaced);
    }
    out->replaced = (i64)replaced->size();
}

void Loader::worker_loop() {
    for (;;) {
        int slot = -1;
        i64 seq = 0;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !free_slots_.empty(); });
            if (stop_) return;
            slot = free_slots_.back();
            free_slots_.pop_back();
            seq = next_claim_++;
        }
        Ready r;
        r.slot = slot;
        try {
            produce(seq, &slots_[(size_t)slot].batch(), &r.replaced_messages);
        } catch (...) {
            r.error = std::current_exception();  // handed to get(), never lost
        }
        {
            std::lock_guard<std::mutex> lk(mu_);
            ready_[seq] = std::move(r);
        }
        cv_.notify_all();
    }
}

const Batch& Loader::get() {
    Ready r;
    {
        std::unique_lock<std::mutex> lk(mu_);
        if (held_slot_ >= 0) {  // the previous batch is given back
            free_slots_.push_back(held_slot_);
            held_slot_ = -1;
            cv_.notify_all();
        }
        // Sequence next_get_ is always claimed or claimable (a free slot exists), and every
        // claimed sequence ends in ready_ with a batch or an error: this wait ends.
        cv_.wait(lk, [&] { return ready_.count(next_get_) > 0; });
        auto it = ready_.find(next_get_);
        r = std::move(it->second);
        ready_.erase(it);
        ++next_get_;
        if (r.error) {
            free_slots_.push_back(r.slot);
            cv_.notify_all();
        } else {
            held_slot_ = r.slot;
        }
    }
    if (r.error) std::rethrow_exception(r.error);
    count_errors(r.replaced_messages);
    return slots_[(size_t)r.slot].batch();
}

LoaderPosition Loader::position() const {
    std::lock_guard<std::mutex> lk(mu_);
    return {next_get_ / steps_, next_get_ % steps_};
}

void Loader::set_position(LoaderPosition p) {
    ENGINE_CHECK(p.epoch >= 0 && p.step >= 0 && p.step < steps_, engine::ArgError,
                 "Loader::set_position: epoch ", p.epoch, " step ", p.step, " (an epoch has ",
                 steps_, " steps)");
    stop_workers();
    {
        std::lock_guard<std::mutex> lk(mu_);
        ready_.clear();
        free_slots_.clear();
        for (int s = (int)slots_.size() - 1; s >= 0; --s) free_slots_.push_back(s);
        held_slot_ = -1;
        next_claim_ = next_get_ = p.epoch * steps_ + p.step;
    }
    start_workers();
}

void Loader::count_errors(const std::vector<std::string>& messages) {
    if (messages.empty()) return;
    std::lock_guard<std::mutex> lk(err_mu_);
    errors_ += (i64)messages.size();
    for (const auto& m : messages)
        if (error_messages_.size() < 1000) error_messages_.push_back(m);
}

i64 Loader::errors() const {
    std::lock_guard<std::mutex> lk(err_mu_);
    return errors_;
}

std::vector<std::string> Loader::error_messages() const {
    std::lock_guard<std::mutex> lk(err_mu_);
    return error_messages_;
}

// ---------------------------------------------------------------------------------------------
// Given index lists

void Loader::load_into(const std::vector<i64>& indices, i64 epoch, bool augment, BatchBuffer* out) {
    const i64 n = (i64)indices.size();
    ENGINE_CHECK(n > 0, engine::ArgError, "Loader::load: empty index list");
    for (i64 j = 0; j < n; ++j)
        ENGINE_CHECK(indices[j] >= 0 && indices[j] < n_, engine::ArgError, "Loader::load: index ",
                     indices[j], " at position ", j, " is outside the dataset's 0..", n_ - 1);
    if (out->capacity() < n || out->batch().height != cfg_.height ||
        out->batch().width != cfg_.width)
        *out = BatchBuffer(n, cfg_.height, cfg_.width, cfg_.pin_memory);
    Batch& b = out->batch();
    b.n = n;
    b.position = {-1, -1};
    const i64 per_image = 3 * (i64)cfg_.height * cfg_.width;
    const int nt = (int)std::min<i64>(cfg_.workers, n);
    std::vector<std::exception_ptr> errs((size_t)nt);
    std::vector<std::vector<std::string>> replaced((size_t)nt);
    auto run = [&](int t) {
        const i64 lo = n * t / nt, hi = n * (t + 1) / nt;
        try {
            for (i64 j = lo; j < hi; ++j)
                load_sample(indices[j], epoch, augment, false, b.images + j * per_image,
                            b.labels + j, b.indices + j, &replaced[t]);
        } catch (...) {
            errs[t] = std::current_exception();
        }
    };
    std::vector<std::thread> helpers;
    for (int t = 1; t < nt; ++t) helpers.emplace_back(run, t);
    run(0);
    for (auto& h : helpers) h.join();
    // The error of the earliest failing part is the one reported (deterministic).
    for (auto& e : errs)
        if (e) std::rethrow_exception(e);
    std::vector<std::string> all;
    for (auto& r : replaced) all.insert(all.end(), r.begin(), r.end());
    b.replaced = (i64)all.size();
    count_errors(all);
}

const Batch& Loader::load(const std::vector<i64>& indices, i64 epoch, bool augment) {
    load_into(indices, epoch, augment, &list_buffer_);
    return list_buffer_.batch();
}

}  // namespace data
