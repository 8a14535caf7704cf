// SGD momentum update, CPU reference.
#include "engine/sgd.h"

namespace engine {

template <typename T>
void sgd_momentum_update_cpu(T* w, T* v, const T* g, i64 n, T lr, T momentum, T wd, T rescale) {
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < n; ++i) {
        v[i] = momentum * v[i] - lr * (rescale * g[i] + wd * w[i]);
        w[i] += v[i];
    }
}

template void sgd_momentum_update_cpu<float>(float*, float*, const float*, i64, float, float, float,
                                             float);
template void sgd_momentum_update_cpu<double>(double*, double*, const double*, i64, double, double,
                                              double, double);

}  // namespace engine
