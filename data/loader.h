// Loader: worker threads decode and augment samples of an ImageDataset into reusable (pinned
// when CUDA is usable) batch buffers behind a bounded prefetch queue, with per-epoch shuffling,
// sharding over ranks, a resumable position, and a second entry point for given index lists.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/image.h"

namespace data {

// What a bad sample (unreadable record, undecodable bytes, wrong size under reject) does.
enum class ErrorPolicy {
    raise,  // get()/load() rethrows the error, its message naming the sample (describe())
    skip,   // the sample is replaced by another one (see Loader) and counted in errors()
};

// What happens to the samples of an epoch beyond the last full global batch (world x batch).
enum class Remainder {
    drop,  // steps = floor(N / (world * batch)); the last N mod (world * batch) samples of the
           // epoch's order are not loaded that epoch (a different set every epoch when
           // shuffling); their number is dropped_per_epoch()
    wrap,  // steps = ceil(N / (world * batch)); the last global batch is completed with the
           // first samples of the same epoch's order; their number is wrapped_per_epoch()
};

struct LoaderConfig {
    i64 batch_size = 64;  // samples per rank and step
    int height = 112, width = 112;
    SizePolicy size_policy = SizePolicy::reject;
    AugmentConfig augment = AugmentConfig::none();
    bool shuffle = true;
    u64 shuffle_seed = 0;  // every rank must use the same seed: the ranks share one order
    int rank = 0, world = 1;
    Remainder remainder = Remainder::drop;
    ErrorPolicy on_error = ErrorPolicy::raise;
    int workers = 2;   // decode threads (each fills whole batches)
    int prefetch = 4;  // batches decoded ahead of the consumer (bound of the queue)
    int max_replacements = 16;  // skip policy: candidates tried before giving up
    bool pin_memory = true;  // page-locked batch buffers when a GPU is usable; false for CPU runs
};

// The batch get() returns next: epoch and step (0 .. steps_per_epoch() - 1) within the epoch.
struct LoaderPosition {
    i64 epoch = 0, step = 0;
    bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && step == o.step; }
    bool operator!=(const LoaderPosition& o) const { return !(*this == o); }
};

// A view of one batch in host memory.
struct Batch {
    i64 n = 0;
    int height = 0, width = 0;
    float* images = nullptr;         // (n, 3, height, width), values 0..255
    std::int32_t* labels = nullptr;  // (n)
    i64* indices = nullptr;          // (n) the sample indices actually loaded
    LoaderPosition position;         // the stream position it came from (load(): {-1, -1})
    i64 replaced = 0;                // samples replaced under ErrorPolicy::skip in this batch
};

// Pinned (when CUDA is usable) host storage for up to `capacity` samples; move-only.
class BatchBuffer {
public:
    BatchBuffer() = default;
    BatchBuffer(i64 capacity, int height, int width, bool pin = true);
    ~BatchBuffer();
    BatchBuffer(BatchBuffer&& o) noexcept;
    BatchBuffer& operator=(BatchBuffer&& o) noexcept;
    BatchBuffer(const BatchBuffer&) = delete;
    BatchBuffer& operator=(const BatchBuffer&) = delete;
    i64 capacity() const { return capacity_; }
    Batch& batch() { return batch_; }
    const Batch& batch() const { return batch_; }

private:
    void release();
    i64 capacity_ = 0;
    Batch batch_;
};

// Skip policy, which sample replaces a bad sample i: first the other samples of i's identity
// (the identity range holding i, cyclically from i + 1), so the label and identity structure
// stay; in the epoch stream, when those are exhausted (or the dataset lists no identities),
// samples drawn from the whole set by a hash of (seed, i, epoch, attempt). The choice is
// deterministic, so a resumed run replaces the same way. After max_replacements failed
// candidates the error is raised anyway (DataError naming the sample).
// Threads: get(), set_position() and load() are called by one consumer thread; position(),
// errors() and error_messages() may be read from any thread.
class Loader {
public:
    // Starts the workers at `start`. The dataset must outlive the loader.
    Loader(const ImageDataset& dataset, const LoaderConfig& config, LoaderPosition start = {});
    ~Loader();  // stops and joins the workers; a batch being decoded is finished first
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    // The next batch of this rank. Epochs follow each other without end (Batch::position says
    // which). The batch stays valid until the next get(), set_position() or destruction.
    // A worker's error is rethrown here (ErrorPolicy::raise) for the batch that held the bad
    // sample, in order; the loader then stands after that batch, so the next get() continues.
    const Batch& get();

    LoaderPosition position() const;  // of the batch the next get() returns
    // Restarts the stream at p: queued batches are discarded; the following batches are those
    // an uninterrupted run would have returned from p on.
    void set_position(LoaderPosition p);

    i64 steps_per_epoch() const { return steps_; }
    i64 dropped_per_epoch() const;  // samples per epoch no rank loads (Remainder::drop)
    i64 wrapped_per_epoch() const;  // samples per epoch loaded twice (Remainder::wrap)
    i64 errors() const;             // samples replaced (skip policy) in batches handed out
    std::vector<std::string> error_messages() const;  // their messages (the first 1000)

    // The global sample order of an epoch (identical on every rank) and the indices rank
    // `rank` loads at (epoch, step): a pure function of the config, for tests and tools.
    std::vector<i64> epoch_order(i64 epoch) const;
    std::vector<i64> step_indices(i64 epoch, i64 step) const;

    // Loads the given samples (any count, duplicates allowed) as one batch, in order: the tail
    // stream's identity triples and the bag embedding. Runs in the calling thread plus helper
    // threads (config.workers in all), independently of the stream. augment = false gives the
    // plain image (inference); otherwise draws come from (seed, index, epoch). The internal
    // buffer's batch stays valid until the next load(). Under the skip policy a bad sample is
    // replaced only within its identity (never by another identity, which would break a triple).
    const Batch& load(const std::vector<i64>& indices, i64 epoch, bool augment);
    void load_into(const std::vector<i64>& indices, i64 epoch, bool augment, BatchBuffer* out);

    const LoaderConfig& config() const { return cfg_; }

private:
    struct Ready {
        int slot = -1;
        std::exception_ptr error;
        std::vector<std::string> replaced_messages;
    };
    void start_workers();
    void stop_workers();
    void worker_loop();
    void produce(i64 seq, Batch* out, std::vector<std::string>* replaced);
    // Decodes + augments sample idx into out; replacement under skip; throws under raise.
    void load_sample(i64 idx, i64 epoch, bool augment, bool whole_set_fallback, float* image,
                     std::int32_t* label, i64* index, std::vector<std::string>* replaced) const;
    i64 replacement(i64 idx, i64 epoch, int attempt, bool whole_set_fallback) const;
    std::shared_ptr<const std::vector<i64>> order_cached(i64 epoch);
    void count_errors(const std::vector<std::string>& messages);

    const ImageDataset& ds_;
    LoaderConfig cfg_;
    i64 n_ = 0, steps_ = 0;
    std::vector<i64> identity_begin_;  // sorted begins of the identity ranges (for replacement)

    // Stream state, guarded by mu_.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<BatchBuffer> slots_;
    std::vector<int> free_slots_;
    std::map<i64, Ready> ready_;  // sequence number (epoch * steps + step) -> result
    i64 next_claim_ = 0;          // next sequence a worker takes
    i64 next_get_ = 0;            // next sequence get() returns
    int held_slot_ = -1;          // slot of the batch the consumer holds
    bool stop_ = false;
    std::vector<std::thread> threads_;

    std::mutex order_mu_;
    std::map<i64, std::shared_ptr<const std::vector<i64>>> orders_;  // a few recent epochs

    mutable std::mutex err_mu_;
    i64 errors_ = 0;
    std::vector<std::string> error_messages_;

    BatchBuffer list_buffer_;  // load()'s buffer
};

}  // namespace data
