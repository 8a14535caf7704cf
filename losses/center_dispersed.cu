// Center-dispersed loss, CUDA. Forward: normalise rows, one block per identity for its center,
// one thread per (i, j) for the Gram matrix, one block for the loss. Backward: one block per
// identity (d c_i, the centre normalisation, then its k members), D floats of shared memory.
#include "engine/cuda_check.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "losses/center_dispersed.h"
#include "losses/loss_cuda_util.cuh"

namespace {

constexpr int kThreads = 256;

__global__ void centers_kernel(float* c, float* mnorm, const float* u, long long D, long long k) {
    const long long i = blockIdx.x;
    float* ci = c + i * D;
    float ss = 0.f;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) {
        float m = 0.f;
        for (long long a = 0; a < k; ++a) m += u[(i * k + a) * D + d];
        m /= (float)k;
        ci[d] = m;
        ss += m * m;
    }
    const float norm = sqrtf(loss_cuda::block_sum(ss));
    const float inv = 1.f / norm;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) ci[d] *= inv;
    if (threadIdx.x == 0) mnorm[i] = norm;
}

__global__ void gram_kernel(float* G, const float* c, long long K, long long D) {
    const long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= K * K) return;
    const long long i = t / K, j = t % K;
    float dot = 0.f;
    for (long long d = 0; d < D; ++d) dot += c[i * D + d] * c[j * D + d];
    G[t] = dot;
}

__global__ void loss_kernel(float* loss, const float* G, long long K, float interweight) {
    float s = 0.f;
    for (long long t = threadIdx.x; t < K * K; t += blockDim.x)
        if (t / K != t % K) s += G[t] * G[t];
    s = loss_cuda::block_sum(s);
    if (threadIdx.x == 0) *loss = interweight * s / ((float)K * (float)K);
}

__global__ void backward_kernel(float* demb, const float* u, const float* r, const float* c,
                                const float* mnorm, const float* G, long long K, long long k,
                                long long D, float coef) {
    extern __shared__ float du[];  // (D): d u_n of every member of identity i
    const long long i = blockIdx.x;
    const float* ci = c + i * D;
    float dot = 0.f;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.f;
        for (long long j = 0; j < K; ++j)
            if (j != i) v += G[i * K + j] * c[j * D + d];
        v *= coef;
        du[d] = v;
        dot += v * ci[d];
    }
    dot = loss_cuda::block_sum(dot);
    const float scale = 1.f / (mnorm[i] * (float)k);
    for (long long d = threadIdx.x; d < D; d += blockDim.x) du[d] = (du[d] - ci[d] * dot) * scale;
    __syncthreads();
    for (long long a = 0; a < k; ++a) {
        const long long n = i * k + a;
        const float* un = u + n * D;
        float p = 0.f;
        for (long long d = threadIdx.x; d < D; d += blockDim.x) p += du[d] * un[d];
        p = loss_cuda::block_sum(p);
        const float inv_r = 1.f / r[n];
        for (long long d = threadIdx.x; d < D; d += blockDim.x)
            demb[n * D + d] = (du[d] - un[d] * p) * inv_r;
    }
}

}  // namespace

void center_dispersed_forward_cuda(float* loss, float* cache, const float* emb, i64 N, i64 D, i64 k,
                                   double interweight, engine::GpuContext& g) {
    engine::NvtxRange range("center_dispersed_forward");
    center_dispersed_cache_numel(N, D, k);  // throws ShapeError on a bad shape
    const i64 K = N / k;
    if (K == 0) {
        CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), g.stream()));
        return;
    }
    float *u = cache, *r = u + N * D, *c = r + N, *mn = c + K * D, *G = mn + K;
    loss_cuda::normalize_rows_kernel<float><<<(unsigned)N, kThreads, 0, g.stream()>>>(u, r, emb, D);
    CUDA_CHECK_LAUNCH();
    centers_kernel<<<(unsigned)K, kThreads, 0, g.stream()>>>(c, mn, u, D, k);
    CUDA_CHECK_LAUNCH();
    gram_kernel<<<(unsigned)((K * K + kThreads - 1) / kThreads), kThreads, 0, g.stream()>>>(G, c, K,
                                                                                            D);
    CUDA_CHECK_LAUNCH();
    loss_kernel<<<1, kThreads, 0, g.stream()>>>(loss, G, K, (float)interweight);
    CUDA_CHECK_LAUNCH();
}

void center_dispersed_backward_cuda(float* demb, const float* cache, i64 N, i64 D, i64 k,
                                    double interweight, double dloss, engine::GpuContext& g) {
    engine::NvtxRange range("center_dispersed_backward");
    center_dispersed_cache_numel(N, D, k);
    const i64 K = N / k;
    if (K == 0) return;
    const float *u = cache, *r = u + N * D, *c = r + N, *mn = c + K * D, *G = mn + K;
    const float coef = (float)(dloss * interweight * 4.0 / ((double)K * (double)K));
    backward_kernel<<<(unsigned)K, kThreads, (size_t)D * sizeof(float), g.stream()>>>(
        demb, u, r, c, mn, G, K, k, D, coef);
    CUDA_CHECK_LAUNCH();
}
