// Counter-based random numbers (Philox4x32-10). A draw is a pure function of (seed, counter), so
// the CPU reference and a CUDA kernel that use the same counters draw identical values (dropout
// masks match bit for bit), and a run is resumed by saving two integers.
#pragma once
#include <cmath>

#include "engine/common.h"

namespace engine {

// One Philox4x32 block: 10 rounds over a 128-bit counter with a 64-bit key.
ENGINE_HD void philox4x32(const u32 counter[4], const u32 key[2], u32 out[4]) {
    const u32 M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    u32 c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    u32 k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
        const u64 p0 = (u64)M0 * c0;  // mulhilo: 32x32 -> 64
        const u64 p1 = (u64)M1 * c2;
        const u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0;
        const u32 hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// Four 32-bit words for (seed, counter); stream selects independent sub-streams.
ENGINE_HD void random_block(u64 seed, u64 counter, u32 stream, u32 out[4]) {
    const u32 ctr[4] = {(u32)counter, (u32)(counter >> 32), stream, 0u};
    const u32 key[2] = {(u32)seed, (u32)(seed >> 32)};
    philox4x32(ctr, key, out);
}

// A uniform float in [0, 1) with 24 random bits: the value dropout compares against p.
ENGINE_HD float random_uniform01(u64 seed, u64 counter) {
    u32 w[4];
    random_block(seed, counter, 0u, w);
    return (float)(w[0] >> 8) * (1.0f / 16777216.0f);
}

// A standard normal double (Box-Muller on 2 x 53 bits of one block).
ENGINE_HD double random_normal(u64 seed, u64 counter) {
    u32 w[4];
    random_block(seed, counter, 1u, w);
    const u64 a = ((u64)w[0] << 32 | w[1]) >> 11, b = ((u64)w[2] << 32 | w[3]) >> 11;
    const double u1 = ((double)a + 1.0) * (1.0 / 9007199254740992.0);  // (0, 1]
    const double u2 = (double)b * (1.0 / 9007199254740992.0);          // [0, 1)
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// SplitMix64's finaliser: mixes a 64-bit value into a well-spread one. Used to derive seeds from
// (seed, epoch, index) tuples, and as a cheap step for pixel noise in the synthetic set.
ENGINE_HD u64 splitmix64(u64 x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Host-side sequential generator for initialisation and shuffling: a seed and a counter, both
// saved in checkpoints so that a resumed run draws exactly what the uninterrupted one would.
class Rng {
public:
    explicit Rng(u64 seed = 0, u64 counter = 0) : seed_(seed), counter_(counter) {}
    u64 seed() const { return seed_; }
    u64 counter() const { return counter_; }
    void set_counter(u64 c) { counter_ = c; }

    u64 next_u64() {
        u32 w[4];
        random_block(seed_, counter_++, 2u, w);
        return (u64)w[0] << 32 | w[1];
    }
    double uniform() { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
    double normal() { return random_normal(seed_, counter_++); }
    // Uniform integer in [0, n) without modulo bias.
    i64 below(i64 n) {
        const u64 un = (u64)n, limit = ~0ull - (~0ull % un);
        u64 x;
        do { x = next_u64(); } while (x >= limit);
        return (i64)(x % un);
    }
    // Fisher-Yates shuffle of any random-access container.
    template <typename V>
    void shuffle(V& v) {
        for (i64 i = (i64)v.size() - 1; i > 0; --i) {
            const i64 j = below(i + 1);
            auto t = v[i]; v[i] = v[j]; v[j] = t;
        }
    }

private:
    u64 seed_, counter_;
};

}  // namespace engine
