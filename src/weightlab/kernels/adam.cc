// Adam's update of one float32 variable in a single pass: an XLA FFI custom call for the CPU.
//
// XLA's CPU backend compiles Keras's Adam into three loops (the first moment, the second, then the
// weight reading both back): 40 bytes of memory traffic a weight, where one pass needs 28. At large
// widths the update is bound by memory bandwidth, so one pass is ~1.5x faster (measured).
//
// On a measured step it also takes the step's weight norms in the same pass — ‖W_t − W_0‖,
// ‖W_t − W_{t−1}‖, ‖W_t‖ — from the float32 differences XLA would form, summed in double, block
// by block in a fixed order (the same sums whichever threads ran the blocks).
//
// The arithmetic is Keras's `Adam.update_step`, operation for operation, with the multiply-adds
// fused exactly where XLA fuses them on a CPU with FMA (written as std::fma, compiled with
// -ffp-contract=off so the compiler adds no others): the results are bit for bit XLA's. Python
// checks that on this machine before using the kernel (weightlab/kernels/adam.py).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// A block of elements is a task's unit of work: 128 KiB of each array.
constexpr int64_t kBlock = 32768;

#if defined(__x86_64__) && defined(__GNUC__)
// One clone per vector width; the loader picks the widest this CPU has.
#define WEIGHTLAB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WEIGHTLAB_CLONES
#endif

struct Constants {
  float alpha;         // lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), computed by Keras's own expression
  float one_minus_b1;  // 1 - beta_1
  float one_minus_b2;  // 1 - beta_2
  float epsilon;
};

struct Sums {
  double from_initial = 0, update = 0, weight = 0;  // Σ(W_t − W_0)², Σ(W_t − W_{t−1})², ΣW_t²
};

// Keras's update of element i, in place; it returns the weight before it.
inline float Update(float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g, int64_t i,
                    Constants c) {
  const float gi = g[i];
  const float mi = std::fma(gi - m[i], c.one_minus_b1, m[i]);              // m + (g - m) * (1 - b1)
  const float vi = std::fma(std::fma(gi, gi, -v[i]), c.one_minus_b2, v[i]);  // v + (g² - v) * (1 - b2)
  m[i] = mi;
  v[i] = vi;
  const float before = w[i];
  w[i] = before - (mi * c.alpha) / (std::sqrt(vi) + c.epsilon);
  return before;
}

WEIGHTLAB_CLONES
void UpdateRange(float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g, int64_t begin,
                 int64_t end, Constants c) {
  for (int64_t i = begin; i < end; ++i) Update(w, m, v, g, i, c);
}

// The same update, and the block's sums of squares. Each of kLanes lanes sums every kLanes-th
// element in order and the lanes are added last, in order: a fixed arithmetic the compiler can
// vectorise without reassociating anything (a single running sum it may not), so every clone
// computes the same sums.
constexpr int kLanes = 8;

// One element's update; it adds the squares of its float32 differences, squared in double (no
// float32 square underflows or overflows), to the lane's double sums.
inline void UpdateAndMeasure(float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g,
                             const float* __restrict w0, int64_t i, Constants c, double& from_initial, double& update,
                             double& weight) {
  const float before = Update(w, m, v, g, i, c);
  const float after = w[i];
  const double d0 = after - w0[i], d1 = after - before, d2 = after;  // float32 differences, squared in double
  from_initial += d0 * d0;
  update += d1 * d1;
  weight += d2 * d2;
}

WEIGHTLAB_CLONES
Sums UpdateAndMeasureRange(float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g,
                           const float* __restrict w0, int64_t begin, int64_t end, Constants c) {
  double from_initial[kLanes] = {}, update[kLanes] = {}, weight[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      UpdateAndMeasure(w, m, v, g, w0, i + k, c, from_initial[k], update[k], weight[k]);
    }
  }
  for (int k = 0; i < end; ++i, ++k) {
    UpdateAndMeasure(w, m, v, g, w0, i, c, from_initial[k], update[k], weight[k]);
  }
  Sums sums;
  for (int k = 0; k < kLanes; ++k) {
    sums.from_initial += from_initial[k];
    sums.update += update[k];
    sums.weight += weight[k];
  }
  return sums;
}

// Blocks are claimed from a shared counter by the calling thread and by tasks on XLA's intra-op
// pool. The caller waits only for blocks already claimed — each is being worked on — so it never
// waits on a task the pool has not started (a pool busy with other calls cannot deadlock it);
// a task that starts after the last block is claimed finds nothing to do. The shared state lives
// as long as the last task that holds it.
struct Work {
  float *w, *m, *v;
  const float *g, *w0;  // w0: the initial weights on a measured step, else null
  int64_t size, blocks;
  Constants constants;
  std::vector<Sums> sums;  // per block, on a measured step
  std::atomic<int64_t> next{0}, finished{0};

  void Drain() {
    for (int64_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      const int64_t begin = b * kBlock, end = std::min(size, begin + kBlock);
      if (w0 != nullptr) {
        sums[b] = UpdateAndMeasureRange(w, m, v, g, w0, begin, end, constants);
      } else {
        UpdateRange(w, m, v, g, begin, end, constants);
      }
      finished.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error AdamUpdate(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gradient, ffi::Buffer<ffi::F32> constants,
                      ffi::Buffer<ffi::S32> measure, ffi::Buffer<ffi::F32> initial, ffi::Buffer<ffi::F32> weight,
                      ffi::Buffer<ffi::F32> m, ffi::Buffer<ffi::F32> v, ffi::ResultBuffer<ffi::F32> new_weight,
                      ffi::ResultBuffer<ffi::F32> new_m, ffi::ResultBuffer<ffi::F32> new_v,
                      ffi::ResultBuffer<ffi::F32> norms) {
  const int64_t size = gradient.element_count();
  const bool measured = measure.element_count() == 1 && measure.typed_data()[0] != 0;
  if (weight.element_count() != size || m.element_count() != size || v.element_count() != size ||
      (measured && initial.element_count() != size) || constants.element_count() != 4 ||
      measure.element_count() != 1 || norms->element_count() != 3) {
    return ffi::Error::InvalidArgument("weightlab_adam_update: operands of different sizes");
  }
  // The outputs alias the inputs (input_output_aliases); XLA copies an input it still needs.
  for (auto [to, from] : {std::pair{new_weight->typed_data(), weight.typed_data()},
                          std::pair{new_m->typed_data(), m.typed_data()}, std::pair{new_v->typed_data(), v.typed_data()}}) {
    if (to != from) std::copy_n(from, size, to);
  }
  const float* c = constants.typed_data();
  auto work = std::make_shared<Work>();
  work->w = new_weight->typed_data();
  work->m = new_m->typed_data();
  work->v = new_v->typed_data();
  work->g = gradient.typed_data();
  work->w0 = measured ? initial.typed_data() : nullptr;
  work->size = size;
  work->blocks = (size + kBlock - 1) / kBlock;
  work->constants = Constants{c[0], c[1], c[2], c[3]};
  if (work->w0 != nullptr) work->sums.resize(work->blocks);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), work->blocks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([work] { work->Drain(); });
  work->Drain();
  while (work->finished.load(std::memory_order_acquire) < work->blocks) std::this_thread::yield();
  Sums total;  // in block order
  for (const Sums& block : work->sums) {
    total.from_initial += block.from_initial;
    total.update += block.update;
    total.weight += block.weight;
  }
  float* out = norms->typed_data();  // NaN where not measured, as the loop's unmeasured rows
  out[0] = measured ? static_cast<float>(std::sqrt(total.from_initial)) : std::nanf("");
  out[1] = measured ? static_cast<float>(std::sqrt(total.update)) : std::nanf("");
  out[2] = measured ? static_cast<float>(std::sqrt(total.weight)) : std::nanf("");
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(WeightlabAdamUpdate, AdamUpdate,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // gradient
                                  .Arg<ffi::Buffer<ffi::F32>>()  // constants (4,)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // measure: take the norms (nonzero) or not
                                  .Arg<ffi::Buffer<ffi::F32>>()  // initial weights W_0 (read only if measured)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // weight
                                  .Arg<ffi::Buffer<ffi::F32>>()  // m
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Ret<ffi::Buffer<ffi::F32>>()  // weight, updated
                                  .Ret<ffi::Buffer<ffi::F32>>()  // m, updated
                                  .Ret<ffi::Buffer<ffi::F32>>()  // v, updated
                                  .Ret<ffi::Buffer<ffi::F32>>()  // norms (3,): ‖W_t − W_0‖, ‖W_t − W_{t−1}‖, ‖W_t‖
);
