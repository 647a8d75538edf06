// Instruction-set dispatch for the CPU kernels.
//
// The extension is compiled for the baseline x86-64 instruction set so that one build runs on any
// machine; the hot loops are compiled again for AVX2+FMA and AVX-512 and the best version is chosen
// when the library is loaded (GCC function multi-versioning, an ifunc on Linux). Elsewhere the
// macros expand to nothing and the baseline version is used.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PDEOP_MULTIVERSIONED 1
#define PDEOP_MULTIVERSION __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#define PDEOP_TARGET_AVX512 __attribute__((target("avx512f")))
#define PDEOP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define PDEOP_MULTIVERSIONED 0
#define PDEOP_MULTIVERSION
#define PDEOP_TARGET_AVX512
#define PDEOP_TARGET_AVX2
#endif

#if defined(_MSC_VER)
#define PDEOP_INLINE __forceinline
#else
#define PDEOP_INLINE inline __attribute__((always_inline))
#endif

#include <cstdint>
#include <cstring>

namespace pdeop {

// Widest SIMD register (bytes) this CPU supports among those the kernels are compiled for.
inline int cpu_vector_bytes() {
#if PDEOP_MULTIVERSIONED
  if (__builtin_cpu_supports("avx512f")) return 64;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 32;
#endif
  return 16;
}

// Isa<VB>::call<Kernel>(args...) runs Kernel::template run<VB>(args...) compiled for the instruction
// set whose vectors have VB bytes (64: AVX-512, 32: AVX2+FMA, 16: x86-64 baseline). Kernel::run must
// be PDEOP_INLINE so that it is compiled into the target-specific caller.
template <int VB>
struct Isa;

template <>
struct Isa<64> {
  template <typename Kernel, typename... Args>
  PDEOP_TARGET_AVX512 static void call(Args... args) { Kernel::template run<64>(args...); }
};

template <>
struct Isa<32> {
  template <typename Kernel, typename... Args>
  PDEOP_TARGET_AVX2 static void call(Args... args) { Kernel::template run<32>(args...); }
};

template <>
struct Isa<16> {
  template <typename Kernel, typename... Args>
  static void call(Args... args) { Kernel::template run<16>(args...); }
};

// Calls Driver::template run<VB>(args...) with the widest VB this CPU supports; the driver
// typically prepares data and runs Isa<VB>::call<...> in its parallel loop.
template <typename Driver, typename... Args>
void run_widest(Args&&... args) {
  switch (cpu_vector_bytes()) {
    case 64:
      Driver::template run<64>(args...);
      break;
    case 32:
      Driver::template run<32>(args...);
      break;
    default:
      Driver::template run<16>(args...);
  }
}

// GCC vector types of VB bytes over T, and complex products on them.
template <typename T, int VB>
struct Simd {
  typedef T vec __attribute__((vector_size(VB)));
  static constexpr int W = VB / sizeof(T);  // real lanes
  static constexpr int P = W / 2;           // complex values, interleaved (re, im, re, im, ...)

  // Stores the first `count` values of v (all W: one vector store).
  static PDEOP_INLINE void store(T* out, const vec& v, int64_t count) {
    if (count == W) {
      std::memcpy(out, &v, sizeof(vec));
    } else {
      std::memcpy(out, &v, sizeof(T) * count);
    }
  }

  // Given acc1 = sum re(a) * b and acc2 = sum im(a) * b for interleaved complex b (re(a), im(a)
  // broadcast over each (re, im) pair), the interleaved complex sum of a * b.
  static PDEOP_INLINE vec complex_sum(vec acc1, vec acc2) {
    vec swapped;  // (im(a) im(b), im(a) re(b)) in each pair, negated where it enters the real part
    for (int l = 0; l < W; ++l) swapped[l] = (l % 2) ? acc2[l - 1] : -acc2[l + 1];
    return acc1 + swapped;
  }
};

}  // namespace pdeop
