/* Replacements for the float->integer conversion helpers in Debian 12's
 * sh4 libgcc.a, which was compiled by the same buggy gcc: their
 * "x >= 2^31" tests (fcmp/gt + fcmp/eq) were folded by sh_treg_combine into
 * a single inverted branch, so e.g. (long long)7.9 == 8 and
 * (long long)0.5 == 1 (busybox "sleep 0.5" returns at once, awk int(7.9)=8).
 * The cross-compiler stage compiles it with the plugin into lib/libgccfix.a
 * and the compiler wrapper links it before -lgcc (LIBGCC_FIX in target.rhai).
 * Only signed 32-bit conversions (the native ftrc instruction) are used
 * here, so nothing calls back into libgcc. */
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define TWO31 2147483648.0
#define TWO32 4294967296.0

u32 __fixunsdfsi (double a)
{
  if (a >= TWO31)
    return (u32) (s32) (a - TWO31) + 0x80000000u;
  return (u32) (s32) a;
}

u32 __fixunssfsi (float a) { return __fixunsdfsi ((double) a); }

u64 __fixunsdfdi (double a)
{
  u32 hi, lo;
  double rem;
  if (!(a >= 1.0))
    return 0;                           /* also negative / NaN (undefined) */
  hi = __fixunsdfsi (a * (1.0 / TWO32)); /* exact: power-of-two scaling */
  rem = a - (double) hi * TWO32;        /* exact, in [0, 2^32) */
  lo = __fixunsdfsi (rem);
  return ((u64) hi << 32) | lo;
}

s64 __fixdfdi (double a)
{
  if (a < 0)
    return -(s64) __fixunsdfdi (-a);
  return (s64) __fixunsdfdi (a);
}

u64 __fixunssfdi (float a) { return __fixunsdfdi ((double) a); }
s64 __fixsfdi (float a) { return __fixdfdi ((double) a); }
