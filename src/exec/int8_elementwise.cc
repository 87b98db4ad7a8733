#include "int8_elementwise.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#define SLIM_HAVE_AVX2_PATH 1
#endif

namespace slim {

namespace {

// ---- scalar reference loops (also the tails of the vector loops) ----

// Round half to even without a libm call per element (std::nearbyint saves and restores the
// floating-point environment): adding and subtracting 1.5 * 2^23 rounds a float of magnitude
// below 2^22 to an integer in the default rounding mode; larger values saturate anyway.
constexpr float kRound = 12582912.f;

template <typename T>
constexpr float level_min() {
  return std::is_same<T, uint8_t>::value ? 0.f : -128.f;
}
template <typename T>
constexpr float level_max() {
  return std::is_same<T, uint8_t>::value ? 255.f : 127.f;
}

template <typename T>
inline T quantize_one(float v, float scale, int zp) {
  float q = std::min(std::max(v / scale, -1024.f), 1024.f);
  q = (q + kRound) - kRound + static_cast<float>(zp);
  return static_cast<T>(std::min(std::max(q, level_min<T>()), level_max<T>()));
}

template <typename TX>
void dequantize_scalar(const TX* x, float* y, int64_t n, float scale, int zp) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int>(x[i]) - zp) * scale;
}

template <typename TY>
void quantize_scalar(const float* x, TY* y, int64_t n, float scale, int zp) {
  for (int64_t i = 0; i < n; ++i) y[i] = quantize_one<TY>(x[i], scale, zp);
}

template <typename TA, typename TB, typename TY>
void add_scalar(const TA* a, float sa, int za, const TB* b, float sb, int zb, TY* y, float sy,
                int zy, bool relu, int64_t n) {
  const float floor = relu ? 0.f : -3.4e38f;
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(static_cast<int>(a[i]) - za) * sa +
              static_cast<float>(static_cast<int>(b[i]) - zb) * sb;
    y[i] = quantize_one<TY>(std::max(v, floor), sy, zy);
  }
}

// ---- AVX2: 8 levels at a time. Only "avx2" is enabled (not "fma"), so a multiply and an add
// stay two roundings, as in the scalar and ATen code. ----
#if SLIM_HAVE_AVX2_PATH

/// The widest vector ISA ATEN_CPU_CAPABILITY allows these loops ("default": scalar, "avx2": no
/// AVX-512), as LibTorch reads it, so that `make test-isa` runs the paths another CPU would.
int isa_cap() {
  static const int cap = [] {
    const char* e = std::getenv("ATEN_CPU_CAPABILITY");
    const std::string v = e ? e : "";
    return v == "default" ? 0 : v == "avx2" ? 1 : 2;
  }();
  return cap;
}

bool has_avx2() {
  static const bool yes = isa_cap() >= 1 && __builtin_cpu_supports("avx2");
  return yes;
}

template <typename T>
__attribute__((target("avx2"))) inline __m256 load8(const T* p, __m256i zp) {
  __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  __m256i w =
      std::is_same<T, uint8_t>::value ? _mm256_cvtepu8_epi32(raw) : _mm256_cvtepi8_epi32(raw);
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(w, zp));
}

/// round_half_even(v / scale) + zp, saturated to T's levels, stored as 8 levels.
template <typename T>
__attribute__((target("avx2"))) inline void store8(T* p, __m256 v, __m256 scale, __m256 zp) {
  __m256 q =
      _mm256_round_ps(_mm256_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm256_add_ps(q, zp);
  q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(level_min<T>())),
                    _mm256_set1_ps(level_max<T>()));
  __m256i i32 = _mm256_cvtps_epi32(q);
  __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
  __m128i i8 =
      std::is_same<T, uint8_t>::value ? _mm_packus_epi16(i16, i16) : _mm_packs_epi16(i16, i16);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), i8);
}

template <typename TX>
__attribute__((target("avx2"))) void dequantize_avx2(const TX* x, float* y, int64_t n, float scale,
                                                     int zp) {
  const __m256i z = _mm256_set1_epi32(zp);
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(load8(x + i, z), s));
  dequantize_scalar(x + i, y + i, n - i, scale, zp);
}

template <typename TY>
__attribute__((target("avx2"))) void quantize_avx2(const float* x, TY* y, int64_t n, float scale,
                                                   int zp) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(static_cast<float>(zp));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(y + i, _mm256_loadu_ps(x + i), s, z);
  quantize_scalar(x + i, y + i, n - i, scale, zp);
}

template <typename TA, typename TB, typename TY>
__attribute__((target("avx2"))) void add_avx2(const TA* a, float sa, int za, const TB* b, float sb,
                                              int zb, TY* y, float sy, int zy, bool relu,
                                              int64_t n) {
  const __m256i vza = _mm256_set1_epi32(za), vzb = _mm256_set1_epi32(zb);
  const __m256 vsa = _mm256_set1_ps(sa), vsb = _mm256_set1_ps(sb), vsy = _mm256_set1_ps(sy),
               vzy = _mm256_set1_ps(static_cast<float>(zy)),
               floor = _mm256_set1_ps(relu ? 0.f : -3.4e38f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v =
        _mm256_add_ps(_mm256_mul_ps(load8(a + i, vza), vsa), _mm256_mul_ps(load8(b + i, vzb), vsb));
    store8(y + i, _mm256_max_ps(v, floor), vsy, vzy);
  }
  add_scalar(a + i, sa, za, b + i, sb, zb, y + i, sy, zy, relu, n - i);
}

// ---- AVX-512 VBMI: a 256-entry byte table looked up 64 bytes at a time (vpermi2b on each half
// of the table, the top bit of the byte choosing the half). ----

bool has_vbmi() {
  static const bool yes = isa_cap() >= 2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vbmi");
  return yes;
}

#define SLIM_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

SLIM_VBMI inline __m512i lookup64(__m512i v, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
  const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
  const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
}

SLIM_VBMI void lookup_vbmi(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64),
                t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    _mm512_storeu_si512(y + i, lookup64(_mm512_loadu_si512(x + i), t0, t1, t2, t3));
  if (i < n) {
    const __mmask64 k = (uint64_t{1} << (n - i)) - 1;
    _mm512_mask_storeu_epi8(y + i, k, lookup64(_mm512_maskz_loadu_epi8(k, x + i), t0, t1, t2, t3));
  }
}

#undef SLIM_VBMI

// ---- AVX-512: a 256-entry float table gathered 16 levels at a time (the squeeze-excitation
// steps). ----

bool has_avx512() {
  static const bool yes = isa_cap() >= 2 && __builtin_cpu_supports("avx512f");
  return yes;
}

/// y[i] = quantize(table[x[i]] * gate[i]) 16 at a time. The division by the scale goes through a
/// multiplication by its reciprocal where that rounds to the same integer: v * (1 / scale) is
/// within 1.5 * 2^-23 relative of v / scale, so below 1024 in magnitude (larger values saturate
/// any level type) the two round alike unless the product lies within 2^-10 of a half, where the
/// vector divides. (In the AVX2 loops the extra instructions cost more than the division saves.)
template <typename T>
__attribute__((target("avx512f"))) void scale_levels_avx512(const uint8_t* x, const float* gate,
                                                            const float* table, T* y, int64_t n,
                                                            float scale, int zp) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 s = _mm512_set1_ps(scale), inv = _mm512_set1_ps(1.f / scale),
               z = _mm512_set1_ps(static_cast<float>(zp)), lo = _mm512_set1_ps(level_min<T>()),
               hi = _mm512_set1_ps(level_max<T>()), near = _mm512_set1_ps(0.5f - 1.f / 1024),
               big = _mm512_set1_ps(1024.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i idx =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(idx, table, 4), _mm512_loadu_ps(gate + i));
    const __m512 m = _mm512_mul_ps(v, inv);
    __m512 r = _mm512_roundscale_ps(m, kNearest);
    const __mmask16 slow =
        _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(m, r)), near, _CMP_GT_OQ) &
        _mm512_cmp_ps_mask(_mm512_abs_ps(m), big, _CMP_LT_OQ);
    if (slow) r = _mm512_roundscale_ps(_mm512_div_ps(v, s), kNearest);
    const __m512 q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, z), lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
  }
  for (; i < n; ++i) y[i] = quantize_one<T>(table[x[i]] * gate[i], scale, zp);
}

__attribute__((target("avx512f"))) void accumulate_levels_avx512(const uint8_t* x, double* sum,
                                                                 int64_t n, const float* table) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i idx =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m512 v = _mm512_i32gather_ps(idx, table, 4);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi =
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    _mm512_storeu_pd(sum + i, _mm512_add_pd(_mm512_loadu_pd(sum + i), lo));
    _mm512_storeu_pd(sum + i + 8, _mm512_add_pd(_mm512_loadu_pd(sum + i + 8), hi));
  }
  for (; i < n; ++i) sum[i] += table[x[i]];
}

#endif  // SLIM_HAVE_AVX2_PATH

/// Calls f with the level buffer typed (uint8_t* or int8_t*), offset by `begin`.
template <typename F>
void with_type(ConstLevels x, int64_t begin, F&& f) {
  if (x.u8)
    f(static_cast<const uint8_t*>(x.data) + begin);
  else
    f(static_cast<const int8_t*>(x.data) + begin);
}
template <typename F>
void with_type(Levels x, int64_t begin, F&& f) {
  if (x.u8)
    f(static_cast<uint8_t*>(x.data) + begin);
  else
    f(static_cast<int8_t*>(x.data) + begin);
}

}  // namespace

void dequantize_levels(ConstLevels x, float* y, int64_t begin, int64_t n, float scale, int zp) {
  with_type(x, begin, [&](auto* px) {
#if SLIM_HAVE_AVX2_PATH
    if (has_avx2()) return dequantize_avx2(px, y + begin, n, scale, zp);
#endif
    dequantize_scalar(px, y + begin, n, scale, zp);
  });
}

void quantize_levels(const float* x, Levels y, int64_t begin, int64_t n, float scale, int zp) {
  with_type(y, begin, [&](auto* py) {
#if SLIM_HAVE_AVX2_PATH
    if (has_avx2()) return quantize_avx2(x + begin, py, n, scale, zp);
#endif
    quantize_scalar(x + begin, py, n, scale, zp);
  });
}

void add_levels(ConstLevels a, float sa, int za, ConstLevels b, float sb, int zb, Levels y,
                float sy, int zy, bool relu, int64_t begin, int64_t n) {
  with_type(a, begin, [&](auto* pa) {
    with_type(b, begin, [&](auto* pb) {
      with_type(y, begin, [&](auto* py) {
#if SLIM_HAVE_AVX2_PATH
        if (has_avx2()) return add_avx2(pa, sa, za, pb, sb, zb, py, sy, zy, relu, n);
#endif
        add_scalar(pa, sa, za, pb, sb, zb, py, sy, zy, relu, n);
      });
    });
  });
}

void lookup_levels(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table) {
#if SLIM_HAVE_AVX2_PATH
  if (has_vbmi()) return lookup_vbmi(x, y, n, table);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
}

void accumulate_levels(const uint8_t* x, double* sum, int64_t n, const float* table) {
#if SLIM_HAVE_AVX2_PATH
  if (has_avx512()) return accumulate_levels_avx512(x, sum, n, table);
#endif
  for (int64_t i = 0; i < n; ++i) sum[i] += table[x[i]];
}

void scale_levels(const uint8_t* x, const float* gate, const float* table, Levels y, int64_t n,
                  float scale, int zp) {
  const float inv = 1.f / scale;
  const bool finite = inv == inv && inv - inv == 0.f;
  with_type(y, 0, [&](auto* py) {
    using T = std::remove_pointer_t<decltype(py)>;
#if SLIM_HAVE_AVX2_PATH
    if (finite && has_avx512()) return scale_levels_avx512<T>(x, gate, table, py, n, scale, zp);
#endif
    for (int64_t i = 0; i < n; ++i) py[i] = quantize_one<T>(table[x[i]] * gate[i], scale, zp);
  });
}

}  // namespace slim
