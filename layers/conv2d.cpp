// 2-D convolution (NCHW, no bias), CPU reference: im2col into a reused per-thread scratch
// matrix, then one OpenBLAS GEMM per image; backward through the same column matrix and col2im.
#include "layers/conv2d.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "engine/blas.h"
#include "engine/error.h"

using engine::gemm_cpu;

namespace {

// A growable scratch buffer per thread and element type: once it has grown to the largest
// column matrix a model needs, no call allocates again. Its contents are never read before
// being written, so growing drops the old contents instead of copying them.
template <typename T>
T* conv_scratch(i64 n) {
    thread_local std::unique_ptr<T[]> buf;
    thread_local i64 capacity = 0;
    if (n > capacity) {
        buf.reset();  // free first, so the peak is one buffer, not two
        buf.reset(new T[(size_t)n]);
        capacity = n;
    }
    return buf.get();
}

// The column matrix of one image is (C*R*S, P*Q): row (c, r, s) holds, for every output
// position (p, q), the input value the filter tap (r, s) of channel c sees there (0 in the
// padding). A batch of images is processed in chunks so that the scratch stays bounded.
constexpr i64 kMaxScratchElements = i64(1) << 24;  // 64 MiB of float per chunk

// Loops over fewer elements than this run on one thread: below it the cost of waking the
// OpenMP team exceeds the work (the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 32768;

void check_shape(const Conv2dShape& s, const char* who) {
    ENGINE_CHECK(s.N >= 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.K > 0 && s.R > 0 && s.S > 0,
                 engine::ShapeError, who, ": bad shape N=", s.N, " C=", s.C, " H=", s.H,
                 " W=", s.W, " K=", s.K, " R=", s.R, " S=", s.S);
    ENGINE_CHECK(s.stride > 0 && s.pad >= 0, engine::ShapeError, who, ": stride ", s.stride,
                 " and pad ", s.pad, " must be > 0 and >= 0");
    ENGINE_CHECK(s.H + 2 * s.pad >= s.R && s.W + 2 * s.pad >= s.S, engine::ShapeError, who,
                 ": kernel ", s.R, "x", s.S, " larger than the padded input ", s.H + 2 * s.pad,
                 "x", s.W + 2 * s.pad);
}

// A 1x1 convolution with stride 1 and no padding is a plain GEMM on the input itself.
bool is_pointwise(const Conv2dShape& s) {
    return s.R == 1 && s.S == 1 && s.stride == 1 && s.pad == 0;
}

i64 images_per_chunk(const Conv2dShape& s) {
    const i64 per_image = s.C * s.R * s.S * s.P() * s.Q();
    return std::max<i64>(1, std::min<i64>(s.N, kMaxScratchElements / std::max<i64>(per_image, 1)));
}

// Column rows of channel c of one image (rows c*R*S ... (c+1)*R*S - 1).
template <typename T>
void im2col_channel(T* col, const T* in_c, const Conv2dShape& s) {
    const i64 P = s.P(), Q = s.Q();
    for (i64 r = 0; r < s.R; ++r)
        for (i64 t = 0; t < s.S; ++t) {
            T* row = col + (r * s.S + t) * P * Q;
            for (i64 p = 0; p < P; ++p) {
                T* dst = row + p * Q;
                const i64 h = p * s.stride - s.pad + r;
                if (h < 0 || h >= s.H) {
                    std::fill(dst, dst + Q, T(0));
                    continue;
                }
                const T* src = in_c + h * s.W;
                for (i64 q = 0; q < Q; ++q) {
                    const i64 w = q * s.stride - s.pad + t;
                    dst[q] = (w >= 0 && w < s.W) ? src[w] : T(0);
                }
            }
        }
}

// The adjoint of im2col for channel c: every column entry is added back onto the input value it
// was copied from; entries that came from the padding are dropped. The order of the additions is
// fixed (r, s, p, q), so the result does not depend on threads.
template <typename T>
void col2im_channel(T* din_c, const T* col, const Conv2dShape& s) {
    const i64 P = s.P(), Q = s.Q();
    std::fill(din_c, din_c + s.H * s.W, T(0));
    for (i64 r = 0; r < s.R; ++r)
        for (i64 t = 0; t < s.S; ++t) {
            const T* row = col + (r * s.S + t) * P * Q;
            for (i64 p = 0; p < P; ++p) {
                const i64 h = p * s.stride - s.pad + r;
                if (h < 0 || h >= s.H) continue;
                const T* src = row + p * Q;
                T* dst = din_c + h * s.W;
                for (i64 q = 0; q < Q; ++q) {
                    const i64 w = q * s.stride - s.pad + t;
                    if (w >= 0 && w < s.W) dst[w] += src[q];
                }
            }
        }
}

// im2col of images [n0, n0 + nb) into col (nb blocks of CRS x PQ). Parallel over (image,
// channel): each pair writes its own rows, so threads never share a destination.
template <typename T>
void im2col_chunk(T* col, const T* in, i64 n0, i64 nb, const Conv2dShape& s) {
    const i64 HW = s.H * s.W, RSPQ = s.R * s.S * s.P() * s.Q();
#pragma omp parallel for collapse(2) schedule(static) \
    if (nb * s.C * RSPQ >= kParallelMin)
    for (i64 b = 0; b < nb; ++b)
        for (i64 c = 0; c < s.C; ++c)
            im2col_channel(col + (b * s.C + c) * RSPQ, in + ((n0 + b) * s.C + c) * HW, s);
}

template <typename T>
void col2im_chunk(T* din, const T* col, i64 n0, i64 nb, const Conv2dShape& s) {
    const i64 HW = s.H * s.W, RSPQ = s.R * s.S * s.P() * s.Q();
#pragma omp parallel for collapse(2) schedule(static) \
    if (nb * s.C * RSPQ >= kParallelMin)
    for (i64 b = 0; b < nb; ++b)
        for (i64 c = 0; c < s.C; ++c)
            col2im_channel(din + ((n0 + b) * s.C + c) * HW, col + (b * s.C + c) * RSPQ, s);
}

}  // namespace

// out_n (K, PQ) = weight (K, CRS) * col_n (CRS, PQ) for every image n.
template <typename T>
void conv2d_forward_cpu(T* out, const T* in, const T* weight, const Conv2dShape& s) {
    check_shape(s, "conv2d_forward_cpu");
    const i64 PQ = s.P() * s.Q(), CRS = s.C * s.R * s.S;
    if (is_pointwise(s)) {
        for (i64 n = 0; n < s.N; ++n)
            gemm_cpu(false, false, s.K, PQ, CRS, T(1), weight, in + n * s.C * s.H * s.W, T(0),
                     out + n * s.K * PQ);
        return;
    }
    const i64 chunk = images_per_chunk(s);
    T* col = conv_scratch<T>(chunk * CRS * PQ);
    for (i64 n0 = 0; n0 < s.N; n0 += chunk) {
        const i64 nb = std::min(chunk, s.N - n0);
        im2col_chunk(col, in, n0, nb, s);
        for (i64 b = 0; b < nb; ++b)
            gemm_cpu(false, false, s.K, PQ, CRS, T(1), weight, col + b * CRS * PQ, T(0),
                     out + (n0 + b) * s.K * PQ);
    }
}

// With col_n the column matrix of image n and dout_n (K, PQ):
//   dweight (K, CRS) += sum_n dout_n * col_n^T   (images added in order n = 0, 1, ...)
//   dcol_n (CRS, PQ)  = weight^T * dout_n,  din_n = col2im(dcol_n)
// dcol_n overwrites col_n once dweight has used it, so backward needs no second scratch.
template <typename T>
void conv2d_backward_cpu(T* din, T* dweight, const T* dout, const T* in, const T* weight,
                         const Conv2dShape& s) {
    check_shape(s, "conv2d_backward_cpu");
    const i64 PQ = s.P() * s.Q(), CRS = s.C * s.R * s.S, CHW = s.C * s.H * s.W;
    if (is_pointwise(s)) {
        for (i64 n = 0; n < s.N; ++n) {
            const T* dout_n = dout + n * s.K * PQ;
            gemm_cpu(false, true, s.K, CRS, PQ, T(1), dout_n, in + n * CHW, T(1), dweight);
            if (din) gemm_cpu(true, false, CRS, PQ, s.K, T(1), weight, dout_n, T(0), din + n * CHW);
        }
        return;
    }
    const i64 chunk = images_per_chunk(s);
    T* col = conv_scratch<T>(chunk * CRS * PQ);
    for (i64 n0 = 0; n0 < s.N; n0 += chunk) {
        const i64 nb = std::min(chunk, s.N - n0);
        im2col_chunk(col, in, n0, nb, s);
        for (i64 b = 0; b < nb; ++b) {
            const T* dout_n = dout + (n0 + b) * s.K * PQ;
            T* col_n = col + b * CRS * PQ;
            gemm_cpu(false, true, s.K, CRS, PQ, T(1), dout_n, col_n, T(1), dweight);
            if (din) gemm_cpu(true, false, CRS, PQ, s.K, T(1), weight, dout_n, T(0), col_n);
        }
        if (din) col2im_chunk(din, col, n0, nb, s);
    }
}

template void conv2d_forward_cpu<float>(float*, const float*, const float*, const Conv2dShape&);
template void conv2d_forward_cpu<double>(double*, const double*, const double*,
                                         const Conv2dShape&);
template void conv2d_backward_cpu<float>(float*, float*, const float*, const float*, const float*,
                                         const Conv2dShape&);
template void conv2d_backward_cpu<double>(double*, double*, const double*, const double*,
                                          const double*, const Conv2dShape&);
